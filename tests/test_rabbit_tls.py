"""The rabbit kind's ``amqps://`` URLs and their ``ssl_options``, as far as they are checked
when the config is loaded. (No test broker speaks TLS: connecting over TLS is not tested here;
its failures are translated as tests/test_rabbit.py checks.)"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trustme

import eventisc
from eventisc import ConfigError
from eventisc.listeners.rabbit.url import connection_parameters


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, str]:
    ca = trustme.CA()
    client = ca.issue_cert("billing.example.org")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "c.pem", "key": tmp_path / "c.key"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["cert"]))
    client.private_key_pem.write_to_path(str(files["key"]))
    return {name: str(path) for name, path in files.items()}


def amqps(ssl_options: dict[str, Any] | None = None, host: str = "rabbit.internal") -> str:
    url = f"amqps://billing:secret@{host}/%2F"
    return url if ssl_options is None else f"{url}?ssl_options={quote(repr(ssl_options))}"


def load_error(url: str) -> ConfigError:
    listener = {"kind": "rabbit", "event_name": "e", "url": url, "publish_kwargs": {}}
    with pytest.raises(ConfigError) as info:
        eventisc.create_app(listeners=[listener])
    assert info.value.path == "listeners[0].url"
    assert "secret" not in str(info.value)
    return info.value


def test_amqps_without_ssl_options_checks_the_broker_with_the_system_cas():
    params = connection_parameters(amqps(), 10)
    assert params.port == 5671
    assert params.ssl_options.context.verify_mode == ssl.CERT_REQUIRED
    assert params.ssl_options.context.check_hostname


def test_ssl_options_with_a_private_ca_and_a_client_certificate(pems):
    options = {"ca_certs": pems["ca"], "certfile": pems["cert"], "keyfile": pems["key"]}
    params = connection_parameters(amqps(options, host="10.0.0.5"), 10)
    context = params.ssl_options.context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 1  # the private CA, and only it


def test_server_hostname_names_the_certificate_to_expect(pems):
    options = {"ca_certs": pems["ca"], "server_hostname": "rabbit.internal"}
    params = connection_parameters(amqps(options, host="10.0.0.5"), 10)
    assert params.ssl_options.server_hostname == "rabbit.internal"


def test_legacy_ssl_options_keys_that_ask_for_a_check_still_load(pems):
    params = connection_parameters(amqps({"ca_certs": pems["ca"], "cert_reqs": 2}), 10)
    assert params.ssl_options.context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    "key, message",
    [
        ("ca_certs", "ca_certs: no such file"),
        ("certfile", "certfile: no such file"),
        ("keyfile", "keyfile: no such file"),
        ("capath", "capath: no such directory"),
    ],
)
def test_a_missing_ca_certificate_or_key_fails_at_load(pems, tmp_path, key, message):
    options = {"ca_certs": pems["ca"], "certfile": pems["cert"], "keyfile": pems["key"]}
    missing = str(tmp_path / "missing")
    options[key] = missing
    error = load_error(amqps(options))
    assert f"query option ssl_options: {message} {missing!r}" in str(error)


def test_an_unknown_ssl_options_key_fails_at_load_instead_of_being_ignored(pems):
    error = load_error(amqps({"ca_certs": pems["ca"], "certfil": pems["cert"]}))
    assert "unknown key 'certfil', which pika would ignore (did you mean 'certfile'?" in str(error)


def test_cert_reqs_none_fails_at_load_since_pika_checks_certificates_anyway(pems):
    error = load_error(amqps({"ca_certs": pems["ca"], "cert_reqs": 0}))
    assert "cert_reqs 0 (no certificate check) is ignored by pika" in str(error)


def test_ssl_options_without_a_ca_fails_at_load():
    error = load_error(amqps({"server_hostname": "rabbit.internal"}))
    assert "cafile, capath and cadata cannot be all omitted" in str(error)


def test_a_key_file_password_is_not_shown(pems):
    options = {"ca_certs": pems["ca"], "certfile": pems["cert"], "password": "hunter2", "x": 1}
    error = load_error(amqps(options))
    assert "hunter2" not in str(error)


def test_a_key_that_does_not_match_its_certificate_fails_at_load(pems, tmp_path):
    other = tmp_path / "other.key"
    trustme.CA().issue_cert("x").private_key_pem.write_to_path(str(other))
    options = {"ca_certs": pems["ca"], "certfile": pems["cert"], "keyfile": str(other)}
    assert "KEY_VALUES_MISMATCH" in str(load_error(amqps(options)))
