"""moto_server for tests that enforce IAM, with one fix to how moto checks signatures.

moto rebuilds the signed request from werkzeug's request.url, which decodes %2F in the query string, so every
request whose query holds a '/' (ListObjectsV2 with Prefix=ttd/...) fails with SignatureDoesNotMatch
(getmoto/moto#5948). Before checking a signature, this puts each query key and value back in the form SigV4
signs: percent-encoded except for unreserved characters. Everything else is moto_server as installed.
"""

import sys
from urllib.parse import quote, unquote

from moto.iam import access_control
from moto.server import main

_create_aws_request = access_control.IAMRequestBase._create_aws_request


def _canonical_query(query: str) -> str:
    pairs = (pair.partition("=") for pair in query.split("&"))
    return "&".join(f"{quote(unquote(k), safe='-_.~')}{eq}{quote(unquote(v), safe='-_.~')}" for k, eq, v in pairs)


def _create_aws_request_with_encoded_query(self):  # type: ignore[no-untyped-def]
    path, question, query = self._path.partition("?")
    if question:
        self._path = f"{path}?{_canonical_query(query)}"
    return _create_aws_request(self)


access_control.IAMRequestBase._create_aws_request = _create_aws_request_with_encoded_query

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
