"""CURVE security for the stream's ZeroMQ link: encryption, and only authorized consumers served.

Keys are ZeroMQ certificate files (zmq.auth's format): NAME.key holds a public key, NAME.key_secret the
key pair. Each host makes its own pair (`imgsieve keys`) and its secret never leaves it; the producer
gets every consumer's NAME.key in one folder, each consumer gets the producer's NAME.key. The producer's
ZAP handler (zmq.auth) then lets in only consumers whose public key is in that folder: any other
consumer's handshake fails, so it receives nothing, not even a WELCOME.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from imgsieve.errors import UserError

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
Z85_KEY_LENGTH = 40  # a 32-byte Curve25519 key in Z85

log = logging.getLogger(__name__)


def generate(directory: Path, name: str) -> tuple[Path, Path, bool]:
    """Make directory/NAME.key and NAME.key_secret unless both exist; return (public, secret, created)."""
    public, secret = directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"
    if public.is_file() and secret.is_file():
        return public, secret, False
    directory.mkdir(parents=True, exist_ok=True)
    # The secret file is created 0600 from the start: no moment where another user could read it.
    old_umask = os.umask(0o077)
    try:
        zmq.auth.create_certificates(directory, name)
    finally:
        os.umask(old_umask)
    public.chmod(0o644)
    return public, secret, True


def public_key(path: Path) -> bytes:
    """The Z85 public key in a certificate file (public or secret)."""
    return _load(path)[0]


def _load(path: Path) -> tuple[bytes, bytes | None]:
    """Read (public, secret or None) from a certificate file, with errors that say what is wrong."""
    if not path.is_file():
        raise UserError(
            f"cannot read CURVE key file {path}: no such file; make key files with `imgsieve keys`"
        )
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise UserError(f"cannot read CURVE key file {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise UserError(
            f"{path} is not a ZeroMQ certificate: it has no public-key line; make key files with `imgsieve keys`"
        ) from None
    for kind, key in (("public", public), ("secret", secret)):
        if key is not None and len(key) != Z85_KEY_LENGTH:
            raise UserError(
                f"{path}: the {kind} key is {len(key)} characters long, not {Z85_KEY_LENGTH} (Z85); "
                "make key files with `imgsieve keys`"
            )
    return public, secret


def _load_secret(path: Path) -> tuple[bytes, bytes]:
    """Read a key pair from a secret certificate file."""
    public, secret = _load(path)
    if not secret:
        raise UserError(
            f"{path} holds only a public key; give the {SECRET_SUFFIX} file made by `imgsieve keys`"
        )
    return public, secret


def authorized_keys(directory: Path) -> set[bytes]:
    """The public keys of the *.key files in directory; at least one."""
    if not directory.is_dir():
        raise UserError(f"the CURVE authorized keys folder {directory} does not exist")
    keys = {public_key(path) for path in sorted(directory.glob(f"*{PUBLIC_SUFFIX}"))}
    if not keys:
        raise UserError(
            f"no consumer public keys (*{PUBLIC_SUFFIX}) in {directory}: no consumer could connect"
        )
    return keys


class _KeyCheck:
    """ZAP credentials provider: allows the authorized keys and says once which unknown key was refused."""

    def __init__(self, keys: set[bytes], directory: Path):
        self.keys = keys
        self.directory = directory
        self.refused: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        """Allow a client's Z85 public key if it is authorized."""
        if key in self.keys:
            return True
        if key not in self.refused:
            self.refused.add(key)
            log.warning(
                "refused a consumer whose CURVE public key %s is not in %s: it gets no work",
                key.decode(),
                self.directory,
            )
        return False


def serve_securely(
    context: zmq.Context[Any], socket: zmq.Socket[Any], secret_file: Path, clients_dir: Path
) -> ThreadAuthenticator:
    """Make socket a CURVE server that only clients in clients_dir may reach; return the running ZAP handler.

    Call before bind; stop the returned authenticator before terminating the context.
    """
    public, secret = _load_secret(secret_file)
    authenticator = ThreadAuthenticator(context, log=logging.getLogger("zmq.auth"))
    authenticator.start()
    authenticator.configure_curve_callback("*", _KeyCheck(authorized_keys(clients_dir), clients_dir))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return authenticator


@dataclass(frozen=True)
class ClientKeys:
    """What a CURVE client needs: its own key pair and the server's public key (all Z85)."""

    public: bytes
    secret: bytes
    server: bytes


def client_keys(secret_file: Path, server_key_file: Path) -> ClientKeys:
    """Read a client's key pair and its server's public key, failing early on a bad file."""
    public, secret = _load_secret(secret_file)
    return ClientKeys(public, secret, public_key(server_key_file))


def connect_securely(socket: zmq.Socket[Any], keys: ClientKeys) -> None:
    """Make socket a CURVE client of the server with keys.server; call before connect."""
    socket.curve_serverkey = keys.server
    socket.curve_publickey = keys.public
    socket.curve_secretkey = keys.secret
