"""Ansible filter imgsieve_role_privileges: the result store's per-role privileges, read from the package.

The store defines which role may do what on which table (imgsieve.store.schema.ROLE_PRIVILEGES); the mysql
role applies those definitions instead of keeping a copy that could drift. This runs on the controller,
where the imgsieve package is installed next to Ansible.
"""

from __future__ import annotations

from collections.abc import Callable

from ansible.errors import AnsibleFilterError  # type: ignore[import-untyped]


def imgsieve_role_privileges(database: str) -> dict[str, dict[str, str]]:
    """Map each store role to mysql_user's priv form, {"database.table": "PRIVILEGES"}, for database."""
    try:
        from imgsieve.store.schema import ROLE_PRIVILEGES
    except ImportError as exc:
        raise AnsibleFilterError(
            f"cannot read the database roles from the imgsieve package ({exc}): install it next to Ansible "
            "(`pip install -e '.[ops]'`) or set mysql_role_privileges"
        ) from None
    return {
        role: {f"{database}.{table}": _as_mysql_user_reads_back(privileges) for table, privileges in tables}
        for role, tables in ROLE_PRIVILEGES.items()
    }


def _as_mysql_user_reads_back(privileges: str) -> str:
    """The same privileges spelt as mysql_user reads them back ("SELECT,INSERT", "ALL"), so that check mode,
    which compares the two spellings without normalizing them, predicts no change when there is none."""
    names = (p.strip() for p in privileges.split(","))
    return ",".join("ALL" if name == "ALL PRIVILEGES" else name for name in names)


class FilterModule:
    """Registers the filter with Ansible."""

    def filters(self) -> dict[str, Callable[[str], dict[str, dict[str, str]]]]:
        """The filters this plugin provides."""
        return {"imgsieve_role_privileges": imgsieve_role_privileges}
