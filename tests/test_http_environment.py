"""The environment's proxies, CA bundle and netrc credentials, read for the urllib3 client as
requests reads them (requests is the reference)."""

from __future__ import annotations

import pytest
from requests.utils import get_environ_proxies, get_netrc_auth, select_proxy

from eventisc.listeners.http.environment import ca_bundle, netrc_auth
from eventisc.listeners.http.environment import select_proxy as our_proxy

URLS = [
    "http://hooks.example.com/x",
    "https://hooks.example.com:8443/x",
    "http://10.1.2.3:8080/x",
    "http://internal.corp/x",
    "https://api.internal.corp/x",
    "http://localhost:9000/x",
]

ENVIRONMENTS = [
    {},
    {"HTTP_PROXY": "http://proxy:3128"},
    {"http_proxy": "proxy:3128", "https_proxy": "http://secure-proxy:3129"},
    {"ALL_PROXY": "http://all:1080"},
    {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "internal.corp,10.0.0.0/8"},
    {"HTTP_PROXY": "http://p:1", "no_proxy": ".corp, localhost:9000"},
    {"HTTP_PROXY": "http://p:1", "HTTPS_PROXY": "http://p:2", "NO_PROXY": "*"},
    {"HTTP_PROXY": "http://p:1", "NO_PROXY": "10.1.2.3"},
]


def _requests_proxy(url: str, configured: dict[str, str]) -> str | None:
    proxies = dict(configured)
    for key, proxy in get_environ_proxies(url, no_proxy=configured.get("no_proxy")).items():
        proxies.setdefault(key, proxy)
    proxy = select_proxy(url, proxies)
    if proxy is not None and "://" not in proxy:
        proxy = f"http://{proxy}"
    return proxy


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "NETRC"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


@pytest.mark.parametrize("environment", ENVIRONMENTS, ids=str)
def test_the_proxy_is_the_one_requests_picks(clean_env, environment):
    for name, value in environment.items():
        clean_env.setenv(name, value)
    for url in URLS:
        assert our_proxy(url, {}) == _requests_proxy(url, {}), url


def test_configured_proxies_come_first_and_their_no_proxy_exempts_the_environments(clean_env):
    clean_env.setenv("HTTP_PROXY", "http://env:1")
    configured = {"https": "http://mine:2", "no_proxy": "example.com"}
    for url in URLS:
        assert our_proxy(url, configured) == _requests_proxy(url, configured), url
    assert our_proxy("http://hooks.example.com/x", configured) is None
    assert our_proxy("https://hooks.example.com/x", configured) == "http://mine:2"


def test_netrc_credentials_are_those_requests_finds(clean_env, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text(
        "machine hooks.example.com login ann password s3cret\n"
        "machine other.example.com password only\n"
    )
    clean_env.setenv("NETRC", str(netrc))
    for url in ("http://hooks.example.com:8080/x", "https://other.example.com/", "http://x/"):
        assert netrc_auth(url) == get_netrc_auth(url), url
    assert netrc_auth("http://hooks.example.com/") == ("ann", "s3cret")


def test_a_malformed_netrc_gives_no_credentials(clean_env, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine\n")
    clean_env.setenv("NETRC", str(netrc))
    assert netrc_auth("http://hooks.example.com/") is None


def test_the_ca_bundle_is_read_as_requests_reads_it(clean_env):
    clean_env.delenv("REQUESTS_CA_BUNDLE", raising=False)
    clean_env.setenv("CURL_CA_BUNDLE", "/curl.pem")
    assert ca_bundle() == "/curl.pem"
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/requests.pem")
    assert ca_bundle() == "/requests.pem"
