// The API, with the bearer token the person entered: kept in sessionStorage (gone when
// the tab closes), sent only in the Authorization header, never in a URL.

const TOKEN_KEY = "tilannekuva-token";

export class Unauthorized extends Error {}

export class Api {
  constructor(storage = window.sessionStorage) {
    this.storage = storage;
  }

  get token() {
    return this.storage.getItem(TOKEN_KEY);
  }

  set token(value) {
    if (value) this.storage.setItem(TOKEN_KEY, value);
    else this.storage.removeItem(TOKEN_KEY);
  }

  headers() {
    return { Authorization: `Bearer ${this.token ?? ""}`, Accept: "application/json" };
  }

  async get(path, params = {}) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) query.set(k, v);
    const url = query.size ? `${path}?${query}` : path;
    const resp = await fetch(url, { headers: this.headers(), cache: "no-store" });
    if (resp.status === 401) throw new Unauthorized("unauthorized");
    if (resp.status === 404) return null;
    if (!resp.ok) {
      let reason = resp.statusText;
      try {
        reason = (await resp.json()).error ?? reason;
      } catch {
        // not JSON: the status text says it
      }
      throw new Error(`${resp.status} ${reason}`);
    }
    return resp.json();
  }

  // Server-sent events through fetch (EventSource cannot send the token): calls
  // onEvent(name, data) per event and onState("live" | "offline"); reconnects with
  // backoff until stop() is called.
  stream(onEvent, onState) {
    let stopped = false;
    let controller = null;
    const run = async () => {
      let wait = 1000;
      while (!stopped) {
        controller = new AbortController();
        try {
          const resp = await fetch("/api/v1/stream", {
            headers: { ...this.headers(), Accept: "text/event-stream" },
            signal: controller.signal,
            cache: "no-store",
          });
          if (resp.status === 401) throw new Unauthorized("unauthorized");
          if (!resp.ok || !resp.body) throw new Error(`stream ${resp.status}`);
          onState("live");
          wait = 1000;
          await readEvents(resp.body, onEvent);
        } catch (err) {
          if (stopped) return;
          if (err instanceof Unauthorized) {
            onState("unauthorized");
            return;
          }
        }
        onState("offline");
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, 30000);
      }
    };
    run();
    return {
      stop() {
        stopped = true;
        controller?.abort();
      },
    };
  }
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a comment: connected, heartbeat
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}
