"""CURVE key files: made once with safe modes, read with errors that name the file, required in pairs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from imgsieve.cli import main
from imgsieve.config import load_config
from imgsieve.errors import UserError
from imgsieve.stream import curve


def mode(path: Path) -> int:
    """Permission bits of path."""
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_makes_a_private_secret_and_a_readable_public_key(tmp_path: Path) -> None:
    public, secret, created = curve.generate(tmp_path / "keys", "consumer-1")
    assert created
    assert (public.name, secret.name) == ("consumer-1.key", "consumer-1.key_secret")
    assert (mode(public), mode(secret)) == (0o644, 0o600)
    keys = curve.client_keys(secret, public)
    assert keys.public == curve.public_key(public) == keys.server
    assert len(keys.secret) == curve.Z85_KEY_LENGTH


def test_generate_keeps_an_existing_pair(tmp_path: Path) -> None:
    public, secret, _ = curve.generate(tmp_path, "producer")
    before = secret.read_bytes()
    assert curve.generate(tmp_path, "producer") == (public, secret, False)
    assert secret.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("hello\n", "no public-key line"),
        ('public-key = "short"\n', "5 characters long, not 40"),
    ],
)
def test_bad_key_files_are_named_with_the_reason(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "peer.key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=expected) as caught:
        curve.public_key(path)
    assert str(path) in str(caught.value)


def test_a_public_key_file_is_not_a_key_pair(tmp_path: Path) -> None:
    public, _, _ = curve.generate(tmp_path, "producer")
    with pytest.raises(UserError, match="holds only a public key"):
        curve.client_keys(public, public)


def test_authorized_keys_reads_every_public_key_and_refuses_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        curve.authorized_keys(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no consumer public keys"):
        curve.authorized_keys(tmp_path / "empty")
    one, _, _ = curve.generate(tmp_path / "made", "one")
    two, _, _ = curve.generate(tmp_path / "made", "two")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    for key in (one, two):
        (allowed / key.name).write_bytes(key.read_bytes())
    assert curve.authorized_keys(allowed) == {curve.public_key(one), curve.public_key(two)}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"IMGSIEVE_CONSUMER_CURVE_SECRET_KEY": "/k"},
            "curve_secret_key is set but curve_producer_key is not",
        ),
        (
            {"IMGSIEVE_PRODUCER_CURVE_AUTHORIZED_KEYS": "/d"},
            "curve_authorized_keys is set but curve_secret_key",
        ),
    ],
)
def test_curve_settings_come_in_pairs(env: dict[str, str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_config(None, env)


def test_keys_command_prints_the_public_key_and_refuses_a_path_as_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", str(tmp_path), "--name", "producer"]) == 0
    public = curve.public_key(tmp_path / "producer.key").decode()
    assert f"public key {public}" in capsys.readouterr().out
    assert main(["keys", str(tmp_path), "--name", "../elsewhere"]) == 2
    assert "use letters, digits" in capsys.readouterr().err
