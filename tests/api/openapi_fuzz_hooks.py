"""Schemathesis hooks for tests/api/openapi_fuzz.rs (loaded through SCHEMATHESIS_HOOKS).

`positive_data_acceptance` is told (schemathesis.toml) that 400 is a legitimate answer to
schema-valid data for the operations whose rules the document cannot express: whether a
`key_file` is really signed by a trusted provider, whether the license allows an empty
`user_name`, the 4096-byte cap on `device_info`, whether `device_jwk.x` is a curve point.
The check below keeps that exception exactly that narrow: any other 400 to schema-valid
data is a failure. `after_call` records every status per operation, so the test can insist
that the run reached real seats (201, 200) and did not just collect refusals.

Environment: SEATKEEP_FUZZ_KEY_FILE (the imported key file, bare compact JWS),
SEATKEEP_FUZZ_STATUS_LOG (file to append "<operation> <status>" lines to).
"""

import json
import os

import schemathesis

KEY_FILE = os.environ.get("SEATKEEP_FUZZ_KEY_FILE", "")
STATUS_LOG = os.environ.get("SEATKEEP_FUZZ_STATUS_LOG")

# Operation -> the `field` values an `invalid_request` to schema-valid data may name, with
# a predicate on the body saying when that is legitimate.
ALLOWED_INVALID_REQUEST = {
    "POST /api/v1/activations": {
        # Empty only on single_device licenses (the test license is node_locked).
        "user_name": lambda body: body.get("user_name") == "",
        # At most 4096 bytes serialized: the schema cannot count bytes.
        "device_info": lambda body: len(json.dumps(body.get("device_info"), separators=(",", ":"))) > 4096,
        # A well-formed `x` that is not a usable Ed25519 point.
        "device_jwk": lambda body: isinstance(body.get("device_jwk"), dict),
    },
    "POST /api/v1/activations/{seat}/reissue": {
        "user_name": lambda body: body.get("user_name") == "",
    },
    "POST /api/v1/keys/lookup": {
        "user_name": lambda body: body.get("user_name") == "",
    },
}
KEY_FILE_OPERATIONS = {"POST /api/v1/activations", "POST /api/v1/keys/lookup"}
# A packet request is a compact JWS (`application/jose`) sent as the text it is; the schema
# can say its shape, not whether its JSON claims or signature are right.
PACKETS = "POST /api/v1/activations/{seat}/packets"
schemathesis.serializer.alias("application/jose", "text/plain")


def _is_positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


@schemathesis.check
def positive_400_only_for_undocumentable_rules(ctx, response, case):
    if response.status_code != 400 or not _is_positive(case):
        return None
    body = case.body if isinstance(case.body, dict) else {}
    try:
        problem = response.json()
    except ValueError:
        raise AssertionError("400 without a JSON problem body")
    code, field = problem.get("code"), problem.get("field")
    label = case.operation.label
    if label == PACKETS and code in ("invalid_packet_request", "amount_out_of_range"):
        return None
    if code == "invalid_key_file" and label in KEY_FILE_OPERATIONS:
        if KEY_FILE and body.get("key_file") == KEY_FILE:
            raise AssertionError(f"the imported key file was refused: {problem.get('detail')}")
        return None
    allowed = ALLOWED_INVALID_REQUEST.get(label, {})
    if code == "invalid_request" and field in allowed and allowed[field](body):
        return None
    raise AssertionError(
        f"schema-valid request refused with 400 {code} (field {field!r}): {problem.get('detail')}; "
        "either the document misses a rule or the server enforces one it should not"
    )


@schemathesis.hook
def after_call(context, case, response):
    _log(f"STATUS {case.operation.label} {response.status_code}")


def _log(line):
    if STATUS_LOG:
        with open(STATUS_LOG, "a", encoding="utf-8") as log:
            log.write(line + "\n")


@schemathesis.hook
def map_case(context, case):
    """Schema-valid activations are sent without `device_jwk`: a seat made with a key answers
    201 without a `return_token` (DESIGN §5), so the document's links from that 201 to
    reissue and return could not follow it. Keyed seats are exercised by the Rust tests
    (tests/api/takeover.rs); `device_jwk` still gets every negative case here."""
    if (
        case.operation.label == "POST /api/v1/activations"
        and _is_positive(case)
        and isinstance(case.body, dict)
    ):
        case.body.pop("device_jwk", None)
    return case
