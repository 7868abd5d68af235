#!/usr/bin/env python3
"""An independent provider side of Seatkeep federation (DESIGN.md section 7), for the tests.

Written from the design text only, with PyJWT's JWS layer, pyca/cryptography and http.server,
so the tests can check that Seatkeep's batches are what the design says.

    federation_provider.py --key-file LICENSE.seatkey --provider-pub PROVIDER.pub.pem \
        --key PROVIDER.pem --kid KID --store STORE.json [--listen 127.0.0.1:0]

It verifies the key file with the provider public key, takes the server key out of it (and
checks that its sha256 is server.id), then takes POSTed batches for that license: typ, kid =
server id, EdDSA signature by the server key, iss, lic, consecutive seqs. Events are kept by
seq (duplicates ignored) and written to STORE.json after each batch; the answer is an ack
signed with the provider key. Prints "listening on http://HOST:PORT" once bound.
"""

import argparse
import base64
import hashlib
import http.server
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization

BATCH_TYP = "seatkeep-federation+jwt"
ACK_TYP = "seatkeep-federation-ack+jwt"


def dearmor(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return "".join(l for l in lines if not l.startswith("-----"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--provider-pub", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--kid", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    args = ap.parse_args()

    jws = jwt.api_jws.PyJWS()
    with open(args.provider_pub, "rb") as f:
        provider_pub = serialization.load_pem_public_key(f.read())
    with open(args.key, "rb") as f:
        provider_key = serialization.load_pem_private_key(f.read(), password=None)
    with open(args.key_file) as f:
        key_file = jws.decode_complete(dearmor(f.read()), provider_pub, algorithms=["EdDSA"])
    claims = json.loads(key_file["payload"])
    server_der = base64.b64decode(claims["server"]["key"])
    server_id = hashlib.sha256(server_der).hexdigest()
    if server_id != claims["server"]["id"]:
        sys.exit("key file: server.key does not match server.id")
    server_key = serialization.load_der_public_key(server_der)
    lic, provider = claims["lic"], claims["iss"]
    events = {}

    def acked():
        n = 0
        while n + 1 in events:
            n += 1
        return n

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def answer(self, status, ctype, body):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def refuse(self, why):
            self.answer(400, "text/plain", why.encode())

        def do_POST(self):
            token = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            if self.headers.get("Content-Type") != "application/jose":
                return self.refuse("content type")
            header = jwt.get_unverified_header(token)
            if header.get("typ") != BATCH_TYP or header.get("kid") != server_id:
                return self.refuse("typ or kid")
            try:
                batch = json.loads(jws.decode(token, server_key, algorithms=["EdDSA"]))
            except jwt.InvalidTokenError as e:
                return self.refuse(f"signature: {e}")
            if batch["iss"] != server_id or batch["lic"] != lic:
                return self.refuse("iss or lic")
            seqs = [e["seq"] for e in batch["events"]]
            if not seqs or len(seqs) > 500 or seqs != list(range(seqs[0], seqs[0] + len(seqs))):
                return self.refuse("events not consecutive")
            if seqs[0] <= acked() + 1:
                for e in batch["events"]:
                    events.setdefault(e["seq"], e)
                with open(args.store, "w") as f:
                    json.dump([events[s] for s in sorted(events)], f)
            ack = {"iss": provider, "sub": server_id, "lic": lic, "acked": acked(), "iat": int(time.time())}
            token = jws.encode(json.dumps(ack).encode(), provider_key, algorithm="EdDSA",
                               headers={"typ": ACK_TYP, "kid": args.kid})
            self.answer(200, "application/jose", token.encode())

    host, port = args.listen.rsplit(":", 1)
    server = http.server.HTTPServer((host, int(port)), Handler)
    print(f"listening on http://{host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
