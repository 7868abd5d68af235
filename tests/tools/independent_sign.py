#!/usr/bin/env python3
"""Sign a Seatkeep key file (DESIGN.md section 3) with an implementation independent of Seatkeep.

Uses PyJWT's JWS layer and pyca/cryptography only, so the tests can check that Seatkeep accepts
key files it did not write itself.

    independent_sign.py --key PROVIDER_PRIVATE_KEY.pem --kid KID --alg EdDSA|RS256|PS256 \
        --claims claims.json --out FILE.seatkey [--wrap 64] [--raw] [--typ TYP]

Output: "-----BEGIN SEATKEEP KEY FILE-----", the compact JWS wrapped at --wrap characters
(0 = one line), "-----END SEATKEEP KEY FILE-----", newline. --out - writes to stdout.
JWS header: {"alg": ALG, "kid": KID, "typ": "seatkeep-keyfile+jwt"}.
The claims file must hold a JSON object; it is re-serialized compactly (UTF-8, no spaces)
unless --raw is given, in which case its bytes are signed exactly as they are (for tests of
odd payloads). --typ overrides the header's typ (for negative tests).
"""

import argparse
import json
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

BEGIN = "-----BEGIN SEATKEEP KEY FILE-----"
END = "-----END SEATKEEP KEY FILE-----"
TYP = "seatkeep-keyfile+jwt"
KEY_TYPES = {"EdDSA": ed25519.Ed25519PrivateKey, "RS256": rsa.RSAPrivateKey, "PS256": rsa.RSAPrivateKey}


def fail(msg):
    print(f"independent_sign.py: {msg}", file=sys.stderr)
    sys.exit(1)


def load_key(path, alg):
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except (OSError, ValueError, TypeError) as e:
        fail(f"cannot load private key {path}: {e}")
    if not isinstance(key, KEY_TYPES[alg]):
        kind = "RSA" if isinstance(key, rsa.RSAPrivateKey) else type(key).__name__.lstrip("_")
        fail(f"{path} holds a {kind} key, which cannot sign {alg}")
    return key


def load_claims(path, raw):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        fail(f"cannot read claims {path}: {e}")
    if raw:
        return data
    try:
        claims = json.loads(data)
    except ValueError as e:
        fail(f"claims {path} are not JSON: {e}")
    if not isinstance(claims, dict):
        fail(f"claims {path} must be a JSON object")
    return json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def armor(token, width):
    if width < 0:
        fail("--wrap must be >= 0")
    lines = [token] if width == 0 else [token[i : i + width] for i in range(0, len(token), width)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--key", required=True, help="provider private key, PEM (PKCS#8 or PKCS#1)")
    p.add_argument("--kid", required=True, help="key id for the JWS header")
    p.add_argument("--alg", required=True, choices=sorted(KEY_TYPES))
    p.add_argument("--claims", required=True, help="JSON file with the claims object")
    p.add_argument("--out", required=True, help="output .seatkey file, or - for stdout")
    p.add_argument("--wrap", type=int, default=64, help="line width of the JWS (0 = no wrapping)")
    p.add_argument("--raw", action="store_true", help="sign the claims file's bytes unchanged")
    p.add_argument("--typ", default=TYP, help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    key = load_key(a.key, a.alg)
    payload = load_claims(a.claims, a.raw)
    token = jwt.PyJWS().encode(payload, key, algorithm=a.alg, headers={"typ": a.typ, "kid": a.kid})
    if isinstance(token, bytes):  # PyJWT < 2
        token = token.decode("ascii")
    text = armor(token, a.wrap)
    if a.out == "-":
        sys.stdout.write(text)
    else:
        with open(a.out, "w", encoding="ascii", newline="\n") as f:
            f.write(text)


if __name__ == "__main__":
    main()
