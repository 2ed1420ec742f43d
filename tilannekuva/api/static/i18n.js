// Labels in Finnish (default), Swedish and English, and the measures the page draws.
// The indicator names are the API's (situation-api.md); a measure is what the map and
// the trend lines show of them, always computed from shown counts only.

export const LANGS = ["fi", "sv", "en"];

const STRINGS = {
  title: { fi: "Tilannekuva", sv: "Lägesbild", en: "Situation picture" },
  subtitle: {
    fi: "Lapsiperheiden tilanne ja palvelutarve postinumeroalueittain",
    sv: "Barnfamiljernas läge och servicebehov per postnummerområde",
    en: "How families with children are doing, by postcode area",
  },
  signIn: { fi: "Kirjaudu", sv: "Logga in", en: "Sign in" },
  signOut: { fi: "Kirjaudu ulos", sv: "Logga ut", en: "Sign out" },
  tokenLabel: { fi: "Käyttöavain (token)", sv: "Åtkomstnyckel (token)", en: "Access token" },
  tokenHelp: {
    fi: "Avain säilyy vain tämän välilehden ajan.",
    sv: "Nyckeln sparas bara så länge fliken är öppen.",
    en: "The token is kept only until this tab is closed.",
  },
  tokenWrong: {
    fi: "Avain ei kelpaa.",
    sv: "Nyckeln godtas inte.",
    en: "The token was not accepted.",
  },
  language: { fi: "Kieli", sv: "Språk", en: "Language" },
  indicator: { fi: "Mittari", sv: "Indikator", en: "Indicator" },
  scope: { fi: "Alue", sv: "Område", en: "Scope" },
  all: { fi: "Kaikki kuusi kuntaa", sv: "Alla sex kommuner", en: "All six municipalities" },
  day: { fi: "Päivä", sv: "Dag", en: "Day" },
  play: { fi: "Toista", sv: "Spela", en: "Play" },
  pause: { fi: "Pysäytä", sv: "Pausa", en: "Pause" },
  now: { fi: "Nyt", sv: "Nu", en: "Now" },
  asOf: { fi: "Tilanne", sv: "Läge", en: "As of" },
  updated: { fi: "päivitetty", sv: "uppdaterad", en: "updated" },
  live: { fi: "ajantasainen", sv: "aktuell", en: "live" },
  past: { fi: "mennyt päivä", sv: "tidigare dag", en: "past day" },
  offline: { fi: "ei yhteyttä", sv: "ingen anslutning", en: "disconnected" },
  hidden: { fi: "piilotettu", sv: "dold", en: "hidden" },
  hiddenLong: {
    fi: "piilotettu (pieni solu)",
    sv: "dold (liten cell)",
    en: "hidden (small cell)",
  },
  noData: { fi: "ei tietoa", sv: "inga uppgifter", en: "no data" },
  legend: { fi: "Selite", sv: "Teckenförklaring", en: "Legend" },
  table: { fi: "Taulukkona", sv: "Som tabell", en: "As a table" },
  downloadCsv: { fi: "Lataa CSV", sv: "Ladda ner CSV", en: "Download CSV" },
  postcode: { fi: "Postinumero", sv: "Postnummer", en: "Postcode" },
  name: { fi: "Nimi", sv: "Namn", en: "Name" },
  municipality: { fi: "Kunta", sv: "Kommun", en: "Municipality" },
  value: { fi: "Arvo", sv: "Värde", en: "Value" },
  count: { fi: "Lukumäärä", sv: "Antal", en: "Count" },
  families: { fi: "Perheitä", sv: "Familjer", en: "Families" },
  share: { fi: "Osuus", sv: "Andel", en: "Share" },
  indicators: { fi: "Mittarit", sv: "Indikatorer", en: "Indicators" },
  groups: { fi: "Palvelutarveryhmät", sv: "Servicebehovsgrupper", en: "Service-need groups" },
  groupsNote: {
    fi: "Ryhmä 1: vähiten tarvetta … ryhmä 10: eniten (moniammatillinen tuki)",
    sv: "Grupp 1: minst behov … grupp 10: mest (multiprofessionellt stöd)",
    en: "Group 1: least need … group 10: most (multi-professional support)",
  },
  group: { fi: "Ryhmä", sv: "Grupp", en: "Group" },
  trend: { fi: "Kehitys", sv: "Utveckling", en: "Trend" },
  range: { fi: "Aikaväli", sv: "Tidsintervall", en: "Range" },
  range1: { fi: "1 vuosi", sv: "1 år", en: "1 year" },
  range3: { fi: "3 vuotta", sv: "3 år", en: "3 years" },
  range5: { fi: "5 vuotta", sv: "5 år", en: "5 years" },
  from: { fi: "alkaen", sv: "från", en: "from" },
  rangeAll: { fi: "koko historia", sv: "hela historiken", en: "whole history" },
  worse: {
    fi: "Heikompi kuin kunnassa ja heikkenee",
    sv: "Sämre än i kommunen och blir sämre",
    en: "Worse than its municipality and getting worse",
  },
  worseRule: {
    fi: "Arvo on suurempi kuin kunnan ja suurempi kuin 90 päivää aiemmin.",
    sv: "Värdet är högre än kommunens och högre än för 90 dagar sedan.",
    en: "The value is above its municipality's and above its own 90 days earlier.",
  },
  types: { fi: "Yleisimmät perhetyypit", sv: "Vanligaste familjetyperna", en: "Most common family types" },
  typesNone: {
    fi: "Perhetyyppimalli ei ole vielä käytössä.",
    sv: "Familjetypmodellen är inte i bruk ännu.",
    en: "The family-type model is not running yet.",
  },
  typesHidden: {
    fi: "Muut tyypit yhteensä",
    sv: "Övriga typer sammanlagt",
    en: "Other types together",
  },
  alerts: { fi: "Hälytykset", sv: "Larm", en: "Alerts" },
  alertsNone: { fi: "Ei hälytyksiä.", sv: "Inga larm.", en: "No alerts." },
  impact: { fi: "Palvelujen vaikutus", sv: "Tjänsternas effekt", en: "Service impact" },
  impactNote: {
    fi: "Muutos todennäköisyydessä siirtyä matalampaan (parempaan) tarveryhmään palvelun alettua, verrattuna samanlaisiin perheisiin, joille palvelu alkaa myöhemmin. Tarve mitataan ilman palveluja itseään.",
    sv: "Förändringen i sannolikheten att flyttas till en lägre (bättre) behovsgrupp efter att tjänsten börjat, jämfört med likadana familjer som får tjänsten senare. Behovet mäts utan tjänsterna själva.",
    en: "The change in the probability of moving to a lower (better) need group after the service starts, against alike families who start it later. Need is measured without the services themselves.",
  },
  impactNone: {
    fi: "Kohortteja ei ole vielä laskettu.",
    sv: "Inga kohorter har räknats ännu.",
    en: "No cohorts counted yet.",
  },
  impactCounted: { fi: "Laskettu kuukauden loppuun", sv: "Räknat till slutet av", en: "Counted to the end of" },
  impactMonths: { fi: "Kuukautta alusta", sv: "Månader från start", en: "Months after start" },
  impactEffect: { fi: "Vaikutus", sv: "Effekt", en: "Effect" },
  impactInterval: { fi: "95 %:n luottamusväli", sv: "95 % konfidensintervall", en: "95 % interval" },
  impactNaive: { fi: "Pelkkä ennen–jälkeen", sv: "Enbart före–efter", en: "Before/after alone" },
  impactEntries: { fi: "Perheitä", sv: "Familjer", en: "Families" },
  impactWithheld: { fi: "Ei julkaista", sv: "Publiceras inte", en: "Withheld" },
  impactFew: {
    fi: "alle {n} aloittanutta perhettä",
    sv: "färre än {n} familjer som börjat",
    en: "fewer than {n} entries",
  },
  impactSmall: {
    fi: "jokin arvion taustaluku on 1–{n} perhettä",
    sv: "ett antal bakom skattningen är 1–{n} familjer",
    en: "a count behind the estimate is 1 to {n} families",
  },
  impactOpening: {
    fi: "tapauksen avannut ilmoitus on yhä tuloksen {n} kuukauden tarkastelujaksossa",
    sv: "anmälan som öppnade ärendet ingår ännu i utfallets {n} månaders period",
    en: "what opened the case is still in the outcome's {n}-month look back",
  },
  impactPreTrend: {
    fi: "Ero ennen palvelun alkua (pieni p: vertailu ei ole samanlainen)",
    sv: "Skillnad före starten (litet p: jämförelsen är inte likadan)",
    en: "Difference before the start (a small p: the comparison is not alike)",
  },
  impactReference: {
    fi: "Muutos mitataan kuukaudesta {m}: palveluun johtava prosessi (lastensuojeluilmoitus) nostaa tarvetta jo ennen alkua",
    sv: "Förändringen mäts från månad {m}: processen som leder till tjänsten (en barnskyddsanmälan) höjer behovet redan före starten",
    en: "Moves are measured from month {m}: the process leading to the service (a child welfare notification) raises the need before it starts",
  },
  impactStudy: {
    fi: "Vaikutus kuukausittain −6 … +12 kuukautta alusta, prosenttiyksikköinä",
    sv: "Effekten månad för månad −6 … +12 månader från start, i procentenheter",
    en: "The effect month by month, −6 … +12 months from the start, in percentage points",
  },
  impactStudyNone: {
    fi: "Kuukausittaisia arvioita ei julkaista.",
    sv: "Inga månadsvisa skattningar publiceras.",
    en: "No monthly estimates are published.",
  },
  pp: { fi: "%-yks.", sv: "%-enh.", en: "pp" },
  expected: { fi: "odotettu", sv: "väntat", en: "expected" },
  since: { fi: "alkaen", sv: "sedan", en: "since" },
  chooseArea: {
    fi: "Valitse alue kartalta tai kunta valikosta.",
    sv: "Välj ett område på kartan eller en kommun i menyn.",
    en: "Choose an area on the map or a municipality from the menu.",
  },
  mapTitle: {
    fi: "Kartta: postinumeroalueet",
    sv: "Karta: postnummerområden",
    en: "Map: postcode areas",
  },
  attribution: {
    fi: "Aluerajat: Tilastokeskus, Paavo 2020 (CC BY 4.0).",
    sv: "Områdesgränser: Statistikcentralen, Paavo 2020 (CC BY 4.0).",
    en: "Boundaries: Statistics Finland, Paavo 2020 (CC BY 4.0).",
  },
  perFamily: { fi: "perhettä kohden", sv: "per familj", en: "per family" },
  per100: { fi: "/ 100 perhettä", sv: "/ 100 familjer", en: "per 100 families" },
  ofFamilies: { fi: "perheistä", sv: "av familjerna", en: "of families" },
  error: { fi: "Virhe", sv: "Fel", en: "Error" },
};

// The shift detector's series beyond the indicators (docs/alerts.md).
export const SERIES_LABELS = {
  service_need_4_10: {
    fi: "Palvelutarveryhmät 4–10",
    sv: "Servicebehovsgrupper 4–10",
    en: "Service-need groups 4–10",
  },
  service_need_9_10: {
    fi: "Palvelutarveryhmät 9–10",
    sv: "Servicebehovsgrupper 9–10",
    en: "Service-need groups 9–10",
  },
};

// The API's eight indicators, labelled as counts (the panels' tables).
export const INDICATOR_LABELS = {
  families: { fi: "Lapsiperheet", sv: "Barnfamiljer", en: "Families with children" },
  children: { fi: "Lapset", sv: "Barn", en: "Children" },
  single_parent_families: {
    fi: "Yhden huoltajan perheet",
    sv: "Ensamförsörjarfamiljer",
    en: "Single-parent families",
  },
  families_social_assistance: {
    fi: "Perustoimeentulotukea saavat perheet",
    sv: "Familjer med grundläggande utkomststöd",
    en: "Families with basic social assistance",
  },
  families_unemployed_parent: {
    fi: "Perheet, joissa työtön vanhempi",
    sv: "Familjer med arbetslös förälder",
    en: "Families with an unemployed parent",
  },
  families_child_welfare: {
    fi: "Lastensuojelun asiakasperheet",
    sv: "Familjer inom barnskyddet",
    en: "Families in child welfare",
  },
  child_welfare_notifications_30d: {
    fi: "Lastensuojeluilmoitukset (30 pv)",
    sv: "Barnskyddsanmälningar (30 d)",
    en: "Child welfare notifications (30 days)",
  },
  mental_health_visits_90d: {
    fi: "Mielenterveyskäynnit (90 pv)",
    sv: "Mentalvårdsbesök (90 d)",
    en: "Mental health visits (90 days)",
  },
};

// What the map and trends show of each indicator: a count, a share of the scope's
// families (percent) or a rate per family (window counts, children); labelled as the
// indicator unless the measure reads differently.
const I = INDICATOR_LABELS;
export const MEASURES = [
  { id: "families_social_assistance", kind: "share", ...I.families_social_assistance },
  { id: "families_unemployed_parent", kind: "share", ...I.families_unemployed_parent },
  { id: "single_parent_families", kind: "share", ...I.single_parent_families },
  { id: "families_child_welfare", kind: "share", ...I.families_child_welfare },
  { id: "child_welfare_notifications_30d", kind: "rate100", ...I.child_welfare_notifications_30d },
  { id: "mental_health_visits_90d", kind: "rate100", ...I.mental_health_visits_90d },
  {
    id: "groups_4_10",
    kind: "share",
    groups: [4, 5, 6, 7, 8, 9, 10],
    fi: "Palvelutarveryhmät 4–10",
    sv: "Servicebehovsgrupper 4–10",
    en: "Service-need groups 4–10",
  },
  {
    id: "groups_9_10",
    kind: "share",
    groups: [9, 10],
    fi: "Palvelutarveryhmät 9–10",
    sv: "Servicebehovsgrupper 9–10",
    en: "Service-need groups 9–10",
  },
  {
    id: "children",
    kind: "rate",
    fi: "Lapsia perhettä kohden",
    sv: "Barn per familj",
    en: "Children per family",
  },
  { id: "families", kind: "count", ...I.families },
];

export const MUNICIPALITIES = {
  "837": { fi: "Tampere", sv: "Tammerfors" },
  "980": { fi: "Ylöjärvi", sv: "Ylöjärvi" },
  "092": { fi: "Vantaa", sv: "Vanda" },
  "609": { fi: "Pori", sv: "Björneborg" },
  "905": { fi: "Vaasa", sv: "Vasa" },
  "399": { fi: "Laihia", sv: "Laihela" },
};

// The map's four panels: municipalities that lie together share one.
export const REGIONS = [
  { id: "tampere", municipalities: ["837", "980"] },
  { id: "vantaa", municipalities: ["092"] },
  { id: "pori", municipalities: ["609"] },
  { id: "vaasa", municipalities: ["905", "399"] },
];

export function t(key, lang) {
  const entry = STRINGS[key];
  if (!entry) throw new Error(`no label ${key}`);
  return entry[lang] ?? entry.fi;
}

export function label(entry, lang) {
  return entry[lang] ?? entry.fi;
}

export function municipalityName(code, lang) {
  const m = MUNICIPALITIES[code];
  return m ? (m[lang] ?? m.fi) : code;
}

export function measureById(id) {
  return MEASURES.find((m) => m.id === id) ?? MEASURES[0];
}

const LOCALES = { fi: "fi-FI", sv: "sv-FI", en: "en-GB" };

export function locale(lang) {
  return LOCALES[lang] ?? LOCALES.fi;
}
