#!/usr/bin/env python3
"""A real SMTP relay for the notification tests (aiosmtpd), on 127.0.0.1 only.

    smtp_sink.py --port N --dir DIR [--mode plain|starttls|tls --cert PEM --key PEM]
                 [--auth-user U --auth-password P [--auth-exclude MECH]...]
                 [--reject-rcpt ADDRESS]... [--data-delay SECONDS]

plain: no TLS and no STARTTLS offered; starttls: STARTTLS offered (not required);
tls: TLS from the first byte. With --auth-user, AUTH is required (also in clear: loopback
only) and only that user and password pass; --auth-exclude drops a mechanism from the
offer. --reject-rcpt answers that RCPT TO with 550 quoting the address. --data-delay waits
that long before answering DATA, after writing DIR/receiving.

Every message received is written as DIR/NNNN.json ({"mail_from", "rcpt_tos", "data",
"tls", "auth_user", "text", "html"}: text and html are the decoded text/plain and text/html
parts), atomically. Prints "ready" once listening and runs until killed or until its stdin
closes.
"""
import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, folder, reject, delay):
        self.folder = folder
        self.numbers = itertools.count(1)
        self.reject = {r.lower() for r in reject}
        self.delay = delay

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            with open(os.path.join(self.folder, "receiving"), "w") as f:
                f.write("1")
            await asyncio.sleep(self.delay)
        n = next(self.numbers)
        path = os.path.join(self.folder, "%04d.json" % n)
        parts = {}
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        for part in parsed.walk():
            kind = part.get_content_type()
            if kind in ("text/plain", "text/html") and kind not in parts:
                parts[kind] = part.get_content()
        # STARTTLS sets session.ssl; implicit TLS shows only on the transport.
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "tls": tls,
            "auth_user": login.decode() if login else None,
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
        }
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 stored as %d" % n


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return check


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth-user")
    p.add_argument("--auth-password")
    p.add_argument("--auth-exclude", action="append", default=[])
    p.add_argument("--reject-rcpt", action="append", default=[])
    p.add_argument("--data-delay", type=float, default=0)
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
    if a.auth_user:
        kwargs["authenticator"] = authenticator(a.auth_user, a.auth_password or "")
        kwargs["auth_required"] = True
        kwargs["auth_require_tls"] = False
        if a.auth_exclude:
            kwargs["auth_exclude_mechanism"] = a.auth_exclude
    sink = Sink(a.dir, a.reject_rcpt, a.data_delay)
    controller = Controller(sink, hostname="127.0.0.1", port=a.port, **kwargs)
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
