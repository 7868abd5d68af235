#!/usr/bin/env python3
"""A real SMTP relay for the notification tests (aiosmtpd), on 127.0.0.1 only.

    smtp_sink.py --port N --dir DIR [--mode plain|starttls|tls --cert PEM --key PEM]

plain: no TLS and no STARTTLS offered; starttls: STARTTLS offered (not required);
tls: TLS from the first byte. Every message received is written as DIR/NNNN.json
({"mail_from", "rcpt_tos", "data", "tls"}), atomically. Prints "ready" once listening and
runs until killed or until its stdin closes.
"""
import argparse
import itertools
import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.numbers)
        path = os.path.join(self.folder, "%04d.json" % n)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "tls": session.ssl is not None,
        }
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 stored as %d" % n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    kwargs = {}
    if a.mode != "plain":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        if a.mode == "starttls":
            kwargs["tls_context"] = ctx
        else:
            kwargs["ssl_context"] = ctx
    controller = Controller(Sink(a.dir), hostname="127.0.0.1", port=a.port, **kwargs)
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
