"""No plaintext secret in the repository's inventories or roles: passwords live in Ansible Vault files, and
the local inventory's vault opens with the documented development password."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VAULT_HEADER = "$ANSIBLE_VAULT;"
SECRET_KEY = re.compile(r"(password|secret|private_key|token)$")
TEMPLATED = re.compile(r"^\s*\{\{.*\}\}\s*$", re.DOTALL)
LOCAL_VAULT = REPO / "inventory" / "local" / "group_vars" / "imgsieve" / "vault.yml"
VAULT_PASSWORD_SCRIPT = REPO / "scripts" / "local" / "vault-password.sh"
VARIABLE_FILES = sorted(
    [*REPO.glob("inventory/**/*.yml"), *REPO.glob("roles/*/defaults/*.yml"), *REPO.glob("roles/*/vars/*.yml")]
)


def secret_values(data: Any, path: str = "") -> list[tuple[str, Any]]:
    """(key path, value) of every key in data whose name says it holds a secret."""
    found: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if SECRET_KEY.search(str(key)) and not isinstance(value, dict | list):
                found.append((where, value))
            found += secret_values(value, where)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += secret_values(value, f"{path}[{index}]")
    return found


@pytest.mark.parametrize("path", VARIABLE_FILES, ids=[str(p.relative_to(REPO)) for p in VARIABLE_FILES])
def test_secrets_are_vaulted_or_templated(path: Path) -> None:
    """A secret-named variable is in a vault file, or refers to another variable (ultimately a vaulted one)."""
    text = path.read_text(encoding="utf-8")
    if text.startswith(VAULT_HEADER):
        return
    plain = [
        (key, value)
        for key, value in secret_values(yaml.safe_load(text) or {})
        if value not in (None, "", "<random>") and not (isinstance(value, str) and TEMPLATED.match(value))
    ]
    assert plain == [], f"plaintext secrets in {path.relative_to(REPO)}: move them into a vault"


def test_local_vault_opens_with_the_documented_password() -> None:
    """inventory/local's vault is encrypted and decrypts with the development password to the store's three."""
    assert LOCAL_VAULT.read_text(encoding="utf-8").startswith(f"{VAULT_HEADER}1.2;AES256;local")
    shown = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "view",
            "--vault-id",
            f"local@{VAULT_PASSWORD_SCRIPT}",
            str(LOCAL_VAULT),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    keys = set(yaml.safe_load(shown))
    assert keys == {f"imgsieve_db_{role}_password" for role in ("admin", "producer", "consumer")}


def test_no_private_key_is_tracked() -> None:
    """No tracked file holds a private key."""
    tracked = subprocess.run(
        ["git", "grep", "-l", "-e", "BEGIN [A-Z ]*PRIVATE KEY", "-e", "secret-key ="],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert [name for name in tracked if not name.startswith("tests/")] == []
