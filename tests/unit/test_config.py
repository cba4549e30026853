"""Stream configuration: defaults < TOML file < IMGSIEVE_* environment < flags, and readable errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from imgsieve.cli import build_parser
from imgsieve.config import DEFAULT_INCLUDE, flag_overrides, load_config
from imgsieve.errors import UserError


def write(tmp_path: Path, text: str) -> Path:
    """Write a TOML config file and return its path."""
    path = tmp_path / "imgsieve.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_file() -> None:
    """Every key has a default; the consumer's window follows batch size and concurrency."""
    config = load_config()
    assert config.producer.bind == "tcp://*:5557"
    assert config.producer.include == list(DEFAULT_INCLUDE)
    assert config.producer.max_attempts == 3
    assert config.consumer.window() == 32 * 3
    assert config.db.password is None


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    """The file beats defaults, the environment beats the file, flags beat the environment."""
    path = write(
        tmp_path, "[consumer]\nbatch_size = 8\nconcurrency = 4\nmax_pixels = 1000\n[db]\npassword = 'f'\n"
    )
    env = {
        "IMGSIEVE_CONSUMER_BATCH_SIZE": "16",
        "IMGSIEVE_CONSUMER_CONCURRENCY": "3",
        "IMGSIEVE_DB_PASSWORD": "e",
    }
    config = load_config(path, env, {"consumer": {"batch_size": 64}})
    assert config.consumer.batch_size == 64  # flag
    assert config.consumer.concurrency == 3  # environment
    assert config.consumer.max_pixels == 1000  # file
    assert config.consumer.max_bytes == 20_000_000  # default
    assert config.db.password is not None
    assert config.db.password.get_secret_value() == "e"


def test_lists_come_from_toml_arrays_or_comma_separated_variables(tmp_path: Path) -> None:
    """include is a TOML array in the file, a comma list in the environment."""
    path = write(tmp_path, "[producer]\ninclude = ['*.png']\n")
    assert load_config(path).producer.include == ["*.png"]
    env = {"IMGSIEVE_PRODUCER_INCLUDE": "*.jpg, *.tif"}
    assert load_config(path, env).producer.include == ["*.jpg", "*.tif"]


def test_other_tools_variables_are_ignored() -> None:
    """IMGSIEVE_* variables outside our sections (e.g. of the training tools) are not ours to judge."""
    assert load_config(None, {"IMGSIEVE_CACHE_DIR": "/x", "HOME": "/root"}).consumer.batch_size == 32


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        (
            "[consumer]\nbatch_size = 'big'\n",
            {},
            r"\[consumer\] batch_size = 'big' \(from .*imgsieve.toml\): input should be a valid integer",
        ),
        ("[consumer]\nbatch_size = 0\n", {}, r"\[consumer\] batch_size = 0 .*greater than or equal to 1"),
        (
            "[consumer]\nbatchsize = 8\n",
            {},
            r"\[consumer\] batchsize .*unknown key; expected one of producer, batch_size",
        ),
        (
            "[consumers]\n",
            {},
            r"unknown section \[consumers\]; expected one of producer, consumer, db, model",
        ),
        ("[consumer\n", {}, r"is not valid TOML"),
        (
            "",
            {"IMGSIEVE_PRODUCER_MAX_ATTEMPTS": "x"},
            r"\[producer\] max_attempts = 'x' \(from IMGSIEVE_PRODUCER_MAX_ATTEMPTS\)",
        ),
        (
            "",
            {"IMGSIEVE_DB_PASWORD": "x"},
            r"IMGSIEVE_DB_PASWORD: \[db\] has no key 'pasword'; expected one of url, password",
        ),
        ("[db]\npassword = 5\n", {}, r"\[db\] password = \*\*\* "),
    ],
)
def test_errors_name_the_key_its_origin_and_what_was_expected(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    """A bad value, an unknown key or section, or broken TOML is one UserError that says what is wrong."""
    with pytest.raises(UserError, match=message):
        load_config(write(tmp_path, toml), env)


def test_a_missing_file_is_a_user_error(tmp_path: Path) -> None:
    """--config pointing nowhere says so."""
    with pytest.raises(UserError, match=r"cannot read config file .*missing\.toml"):
        load_config(tmp_path / "missing.toml")


def test_flags_override_only_when_given() -> None:
    """Flags left out do not mask the file or the environment; given ones map to their keys."""
    args = build_parser().parse_args(["consume", "--batch-size", "8"])
    assert flag_overrides(args) == {"consumer": {"batch_size": 8}}
    args = build_parser().parse_args(
        ["produce", "s3://b/p/", "--job", "j", "--include", "*.png", "--include", "*.gif"]
    )
    assert flag_overrides(args) == {"producer": {"include": ["*.png", "*.gif"]}}


def test_every_stream_flag_has_help_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    """The help of consume states each default and the config key behind the flag."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["consume", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "images per request to the model server (default: 32; config [consumer] batch_size)" in text
    assert "(default: 20000000; config [consumer] max_bytes)" in text


def test_a_password_in_the_db_flag_is_refused() -> None:
    """Command lines are visible to every user of the host: --db with a password is an error."""
    from imgsieve.commands.produce import stream_config

    args = build_parser().parse_args(["consume", "--db", "mysql://u:secret@h/db"])
    with pytest.raises(UserError, match="--db must not contain a password") as caught:
        stream_config(args)
    assert "secret" not in str(caught.value)
    assert isinstance(args, argparse.Namespace)
