"""Settings (tilannekuva/config.py): every setting declared once, read from the
environment by ``from_env`` only; and the packaging of the CLI's optional modules.

The tests are driven by the model's fields, never by a restated list of settings.
"""

from __future__ import annotations

import gc
import sys
import tomllib
import types
import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

from tilannekuva import cli
from tilannekuva.config import GC_THRESHOLD, SECRETS, ConfigError, Settings, markdown_table

ROOT = Path(__file__).resolve().parents[2]
FIELDS = Settings.model_fields
ENV = Settings.env_vars()  # attribute -> environment variable


def kind(name: str) -> type:
    default = FIELDS[name].default
    return str if default is None else type(default)


def other_value(name: str) -> tuple[str, object]:
    """A valid value unlike the default: (as written in the environment, as parsed)."""
    default = FIELDS[name].default
    t = kind(name)
    if t is bool:
        return ("0", False) if default else ("1", True)
    if t is int:
        return str(default + 1), default + 1
    if t is float:
        return str(default + 0.5), default + 0.5
    if typing.get_origin(FIELDS[name].annotation) is typing.Literal:
        other = next(v for v in typing.get_args(FIELDS[name].annotation) if v != default)
        return other, other
    return f"value-of-{ENV[name]}", f"value-of-{ENV[name]}"


def names_of(t: type) -> list[str]:
    return [n for n in FIELDS if kind(n) is t]


@pytest.fixture
def clean_environ(monkeypatch, tmp_path):
    """No setting in os.environ, and a working directory with nothing in it."""
    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def test_every_setting_has_one_declaration_with_a_variable_and_help():
    assert ENV and len(set(ENV.values())) == len(ENV)
    for name, field in FIELDS.items():
        assert ENV[name].isupper() and ENV[name] != "NONE", name
        assert field.description, f"{name} has no help text"


@pytest.mark.parametrize("name", list(FIELDS))
def test_every_variable_is_read_into_its_attribute(name):
    raw, parsed = other_value(name)
    settings = Settings.from_env({ENV[name]: raw})
    assert getattr(settings, name) == parsed
    # ... and into that attribute only.
    assert settings == Settings().replace(**{name: parsed})


def test_all_variables_at_once_equal_construction_by_attribute_name():
    env = {ENV[n]: other_value(n)[0] for n in FIELDS}
    by_name = {n: other_value(n)[1] for n in FIELDS}
    assert Settings.from_env(env) == Settings(**by_name)


def test_defaults_are_the_declared_ones():
    from_env = Settings.from_env({})
    assert from_env == Settings()
    for name, field in FIELDS.items():
        assert getattr(from_env, name) == field.default, name


def test_contract_defaults():
    """The six settings that ../shared/contract/situation-api.md names, as it names them."""
    s = Settings.from_env({})
    assert ENV["kafka_bootstrap"] == "KAFKA_BOOTSTRAP" and s.kafka_bootstrap == "localhost:9092"
    assert ENV["redis_url"] == "REDIS_URL" and s.redis_url == "redis://localhost:6379/0"
    assert ENV["api_port"] == "SITUATION_API_PORT" and s.api_port == 8080
    assert ENV["api_token"] == "SITUATION_API_TOKEN" and s.api_token is None
    assert ENV["pseudonym_key"] == "SITUATION_PSEUDONYM_KEY" and s.pseudonym_key is None
    assert ENV["min_cell"] == "SITUATION_MIN_CELL" and s.min_cell == 5
    assert (s.input_topic, s.dlq_topic, s.alerts_topic) == (
        "register-events",
        "register-events-dlq",
        "situation-alerts",
    )


@pytest.mark.parametrize("name", list(FIELDS))
def test_an_empty_variable_means_the_default(name):
    assert Settings.from_env({ENV[name]: ""}) == Settings()


BAD = {int: ["four", "4.5", "0x10", "1e3"], float: ["fast", "nan", "inf"], bool: ["maybe", "2"]}


@pytest.mark.parametrize(
    "name,bad", [(n, b) for t, values in BAD.items() for n in names_of(t) for b in values]
)
def test_a_bad_value_is_a_config_error_naming_the_variable_and_the_value(name, bad):
    with pytest.raises(ConfigError) as exc:
        Settings.from_env({ENV[name]: bad})
    message = str(exc.value)
    assert f"{ENV[name]}={bad!r}" in message
    assert "\n" not in message


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_min_cell_is_at_least_one(bad):
    with pytest.raises(ConfigError, match=rf"^SITUATION_MIN_CELL='{bad}': "):
        Settings.from_env({"SITUATION_MIN_CELL": bad})
    assert Settings.from_env({"SITUATION_MIN_CELL": "1"}).min_cell == 1
    with pytest.raises(ValidationError):
        Settings(min_cell=0)


def test_every_bad_variable_is_named_in_one_line():
    with pytest.raises(ConfigError) as exc:
        Settings.from_env({"TK_PARTITIONS": "many", "TK_ALERT_Q": "steep"})
    assert "TK_PARTITIONS='many'" in str(exc.value) and "TK_ALERT_Q='steep'" in str(exc.value)


@pytest.mark.parametrize("name", names_of(bool))
@pytest.mark.parametrize(
    "raw,parsed",
    [
        ("1", True),
        ("true", True),
        ("yes", True),
        ("on", True),
        (" ON ", True),
        ("True", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
        ("NO", False),
    ],
)
def test_booleans_accept_the_usual_words(name, raw, parsed):
    assert getattr(Settings.from_env({ENV[name]: raw}), name) is parsed


def test_an_explicit_mapping_is_used_instead_of_os_environ(monkeypatch, tmp_path):
    # Every variable in the process environment is broken, and a .env file says more.
    for name in FIELDS:
        monkeypatch.setenv(ENV[name], "broken" if kind(name) is not str else "from-os-environ")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SITUATION_MIN_CELL=9\nTK_PARTITIONS=9\n")
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"SITUATION_MIN_CELL": "7"}) == Settings(min_cell=7)


def test_none_reads_os_environ_and_no_env_file(monkeypatch, clean_environ, tmp_path):
    (tmp_path / ".env").write_text("TK_PARTITIONS=9\n")
    monkeypatch.setenv("SITUATION_MIN_CELL", "7")
    assert Settings.from_env() == Settings(min_cell=7)


def test_construction_never_reads_the_environment(monkeypatch):
    monkeypatch.setenv("SITUATION_MIN_CELL", "7")
    monkeypatch.setenv("min_cell", "8")
    assert Settings().min_cell == 5
    assert Settings(partitions=2).min_cell == 5


def test_only_the_declared_variables_are_read():
    """Not the attribute names (pydantic-settings would, with populate_by_name), nor
    other spellings of the variables."""
    env = {n: other_value(n)[0] for n in FIELDS}
    env.update({ENV[n].lower(): other_value(n)[0] for n in FIELDS})
    assert Settings.from_env(env) == Settings()


def test_unknown_attributes_are_refused():
    with pytest.raises(ValidationError):
        Settings(min_cells=3)


def test_settings_are_immutable_and_replace_validates():
    s = Settings()
    with pytest.raises(ValidationError):
        s.min_cell = 3  # type: ignore[misc]
    assert s.replace(partitions=2).partitions == 2 and s.partitions == 4
    with pytest.raises(ConfigError, match="^partitions=0: "):
        s.replace(partitions=0)
    assert hash(s) == hash(Settings())


def test_secrets_are_never_shown():
    token, key = "tok-SECRET-abc", "key-SECRET-0123456789"
    s = Settings(
        api_token=token,
        audit_token="audit-SECRET-x",
        pseudonym_key=key,
        redis_url="redis://:pw-SECRET@redis.example:6379/0",
    )
    assert SECRETS == {"api_token", "audit_token", "pseudonym_key"}
    for text in (repr(s), str(s), f"{s}"):
        assert "SECRET" not in text, text
    assert "redis.example" in repr(s)
    assert s.api_token == token and s.pseudonym_key == key  # ... but there to be used
    with pytest.raises(ConfigError) as exc:
        s.replace(pseudonym_key=12345678901234567)
    assert "12345678901234567" not in str(exc.value) and "pseudonym_key=<hidden>" in str(exc.value)


def test_require_pseudonym_key():
    with pytest.raises(ConfigError, match="SITUATION_PSEUDONYM_KEY is not set"):
        Settings().require_pseudonym_key()
    with pytest.raises(ConfigError, match="at least 16"):
        Settings(pseudonym_key="short").require_pseudonym_key()
    assert Settings(pseudonym_key="k" * 16).require_pseudonym_key() == b"k" * 16


def test_internal_topic_is_prefixed_by_the_app_id():
    assert Settings(app_id="tk-x").internal_topic("events-by-id") == "tk-x-events-by-id"


def test_readme_configuration_table_is_generated_and_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert markdown_table() in section, (
        "README's configuration table is stale: paste `python -m tilannekuva.config --markdown`"
    )
    for name, var in ENV.items():
        assert f"`{var}`" in section, name


def test_every_command_runs_with_the_tuned_collector(tmp_path, clean_environ):
    """The batch commands hold every state in memory: the default's full collections
    would walk them all (tilannekuva.config.GC_THRESHOLD)."""
    was = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        out = tmp_path / "f.jsonl"
        assert cli.main(["generate", "--families", "3", "--seed", "1", "--out", str(out)]) == 0
        assert gc.get_threshold() == GC_THRESHOLD
    finally:
        gc.set_threshold(*was)


def test_config_error_from_the_cli_is_one_line(monkeypatch, capsys, clean_environ):
    monkeypatch.setenv("SITUATION_MIN_CELL", "0")
    assert cli.main(["picture", "no-such-file.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tilannekuva: configuration error: SITUATION_MIN_CELL='0': ")
    assert err.count("\n") == 1


# --------------------------------------------------------------------------- packaging


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_optional_module_has_an_extra_that_brings_it():
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    plain = " ".join(project["dependencies"])
    for module, (dist, extra) in cli.OPTIONAL_MODULES.items():
        assert any(req.startswith(dist) for req in extras[extra]), (module, extra)
        assert dist not in plain, f"{dist} is a dependency: {module} is not optional"
        assert f"tilannekuva[{extra}]" in extras["dev"], f"dev does not include [{extra}]"
    assert any(req.startswith("pydantic-settings") for req in project["dependencies"])


@pytest.fixture
def fake_subcommand(monkeypatch):
    """A subcommand ``evaluate`` whose run fails to import ``missing``."""

    def install(missing: str) -> None:
        module = types.ModuleType("tk_fake_subcommand")
        module.add_arguments = lambda parser: None

        def run(args, settings):
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

        module.run = run
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setitem(cli.SUBCOMMANDS, "evaluate", (module.__name__, "fake"))

    return install


def test_a_missing_optional_module_says_which_extra_in_one_line(
    fake_subcommand, capsys, clean_environ
):
    fake_subcommand("sklearn.cluster")
    assert cli.main(["evaluate"]) == 2
    assert capsys.readouterr().err == (
        "tilannekuva evaluate needs scikit-learn: pip install 'tilannekuva[evaluate]'\n"
    )


def test_a_needed_optional_module_is_checked_before_the_subcommand_runs(
    fake_subcommand, monkeypatch, capsys, clean_environ
):
    fake_subcommand("must-not-run")  # run() would raise another error
    monkeypatch.setitem(cli.OPTIONAL_MODULES, "tk_no_such_module", ("tk-dist", "evaluate"))
    monkeypatch.setitem(cli.NEEDS, "evaluate", ("tk_no_such_module",))
    assert cli.main(["evaluate"]) == 2
    assert capsys.readouterr().err == (
        "tilannekuva evaluate needs tk-dist: pip install 'tilannekuva[evaluate]'\n"
    )
    with pytest.raises(SystemExit) as exc:  # --help works without the extra
        cli.main(["evaluate", "--help"])
    assert exc.value.code == 0


def test_every_needed_module_is_an_optional_module_of_a_subcommand():
    for command, modules in cli.NEEDS.items():
        assert command in cli.SUBCOMMANDS
        assert all(m in cli.OPTIONAL_MODULES for m in modules), command


def test_any_other_missing_module_is_a_real_error(fake_subcommand, clean_environ):
    fake_subcommand("no_such_module_at_all")
    with pytest.raises(ModuleNotFoundError):
        cli.main(["evaluate"])


def test_the_alert_methods_are_the_detectors_methods():
    from typing import get_args

    from models.detection import METHODS
    from tilannekuva.config import AlertMethod

    assert set(get_args(AlertMethod)) == set(METHODS)


def test_a_service_runs_one_blas_thread():
    from threadpoolctl import threadpool_info, threadpool_limits

    from tilannekuva.config import one_blas_thread

    with threadpool_limits(2, user_api="blas"):
        one_blas_thread()  # loads numpy's and scipy's BLAS first
        assert [i for i in threadpool_info() if i["user_api"] == "blas"], "no BLAS loaded"
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {1}
