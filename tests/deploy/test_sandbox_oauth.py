"""The sandbox auth service's OAuth2 authorization-code login (Authup's paths): what a web
application such as JupyterHub drives, tested against a hub on a free loopback port."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from flame_lab.sandbox.hub.app import HubThread
from flame_lab.sandbox.hub.auth import OAuthClient, add_oauth_client, add_researcher
from flame_lab.sandbox.hub.provision import ProvisionedNode, node_names, provision
from flame_lab.sandbox.hub.store import Store
from flame_lab.sandbox.hub.wire import ApiError
from tests.deploy.browser import login_form

CALLBACK = "http://127.0.0.1:9/hub/oauth_callback"  # never fetched: redirects are not followed


@dataclass
class Sandbox:
    url: str
    client: OAuthClient
    password: str  # of the researcher "carol"
    node: ProvisionedNode

    def authorize(self, session: requests.Session, **extra: str) -> requests.Response:
        params = {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": CALLBACK,
            "state": "st-123",
            "scope": "global",
            **extra,
        }
        return session.get(f"{self.url}/auth/authorize", params=params, timeout=10)

    def sign_in(
        self, session: requests.Session, page: requests.Response, user: str, password: str
    ) -> requests.Response:
        """Post the login form of ``page`` as a browser would, without following the redirect."""
        nonce, action = login_form(page)
        return session.post(
            urljoin(page.url, action),
            data={"nonce": nonce, "username": user, "password": password},
            allow_redirects=False,
            timeout=10,
        )

    def code(self, **extra: str) -> str:
        session = requests.Session()
        done = self.sign_in(session, self.authorize(session, **extra), "carol", self.password)
        assert done.status_code == 302, done.text
        return parse_qs(urlsplit(done.headers["Location"]).query)["code"][0]

    def exchange(self, code: str, **extra: str) -> requests.Response:
        body = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "client_id": self.client.client_id,
            "client_secret": self.client.client_secret,
            **extra,
        }
        return requests.post(f"{self.url}/auth/token", data=body, timeout=10)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    home = tmp_path_factory.mktemp("oauth-hub")
    store = Store(home)
    try:
        provisioned = provision(store, node_names(3))
        password = add_researcher(store, "carol")
        client = add_oauth_client(store, "jupyterhub", CALLBACK)
    finally:
        store.close()
    with HubThread(home) as hub:
        yield Sandbox(hub.url, client, password, provisioned.nodes[0])


def test_discovery_names_authups_endpoints_under_auth(sandbox: Sandbox) -> None:
    r = requests.get(f"{sandbox.url}/auth/.well-known/openid-configuration", timeout=10)
    meta = r.json()
    assert r.status_code == 200 and meta["issuer"] == f"{sandbox.url}/auth"
    assert meta["authorization_endpoint"] == f"{sandbox.url}/auth/authorize"
    assert meta["token_endpoint"] == f"{sandbox.url}/auth/token"
    assert meta["userinfo_endpoint"] == f"{sandbox.url}/auth/users/@me"
    assert "authorization_code" in meta["grant_types_supported"]


def test_authorize_shows_a_login_form_for_the_client_with_a_nonce_cookie(sandbox: Sandbox) -> None:
    session = requests.Session()
    page = sandbox.authorize(session)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "jupyterhub" in page.text and 'type="password"' in page.text
    nonce, _ = login_form(page)
    assert session.cookies.get("flame_lab_login") == nonce
    assert page.headers["X-Frame-Options"] == "DENY"  # no clickjacking of the login form


def test_the_right_password_redirects_to_the_client_with_a_code_and_the_state(
    sandbox: Sandbox,
) -> None:
    session = requests.Session()
    done = sandbox.sign_in(session, sandbox.authorize(session), "carol", sandbox.password)
    assert done.status_code == 302
    target = urlsplit(done.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == CALLBACK
    query = parse_qs(target.query)
    assert query["state"] == ["st-123"] and len(query["code"][0]) >= 32


def test_a_code_buys_one_user_token_pair_and_only_once(sandbox: Sandbox) -> None:
    code = sandbox.code()
    first = sandbox.exchange(code)
    assert first.status_code == 200, first.text
    assert {"access_token", "refresh_token", "expires_in", "token_type"} <= set(first.json())
    again = sandbox.exchange(code)
    assert again.status_code == 400 and again.json()["code"] == "invalid_grant"


def test_users_me_says_which_researcher_a_token_belongs_to(sandbox: Sandbox) -> None:
    token = sandbox.exchange(sandbox.code()).json()["access_token"]
    r = requests.get(
        f"{sandbox.url}/auth/users/@me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    me = r.json()
    assert r.status_code == 200 and me["name"] == "carol" and me["preferred_username"] == "carol"
    assert me["sub"] == me["id"] and "passwordHash" not in me
    anonymous = requests.get(f"{sandbox.url}/auth/users/@me", timeout=10)
    assert anonymous.status_code == 401


def test_a_node_robots_token_has_no_user_behind_it(sandbox: Sandbox) -> None:
    token = requests.post(
        f"{sandbox.url}/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.node.client_id,
            "client_secret": sandbox.node.client_secret,
        },
        timeout=10,
    ).json()["access_token"]
    r = requests.get(
        f"{sandbox.url}/auth/users/@me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert r.status_code == 403


def test_a_wrong_password_shows_the_form_again_escaped_and_gives_no_code(
    sandbox: Sandbox,
) -> None:
    session = requests.Session()
    page = sandbox.authorize(session)
    again = sandbox.sign_in(session, page, "<script>alert(1)</script>", "wrong")
    assert again.status_code == 401 and "Location" not in again.headers
    assert "<script>alert(1)</script>" not in again.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in again.text
    assert "credentials are invalid" in again.text  # as Authup says it
    # The same form may be retried with the right password.
    retry = sandbox.sign_in(session, again, "carol", sandbox.password)
    assert retry.status_code == 302


def test_a_login_post_without_this_browsers_nonce_cookie_is_refused(sandbox: Sandbox) -> None:
    """Login CSRF: another site cannot post the form into someone else's browser session."""
    page = sandbox.authorize(requests.Session())
    forged = sandbox.sign_in(requests.Session(), page, "carol", sandbox.password)
    assert forged.status_code == 400 and "Location" not in forged.headers


@pytest.mark.parametrize(
    "change",
    [
        {"redirect_uri": "http://evil.example/callback"},
        {"client_id": "00000000-0000-4000-8000-000000000000"},
        {"response_type": "token"},
    ],
)
def test_unknown_clients_and_unregistered_redirects_get_no_form(
    sandbox: Sandbox, change: dict[str, str]
) -> None:
    page = sandbox.authorize(requests.Session(), **change)
    assert page.status_code == 400 and 'name="nonce"' not in page.text


def test_a_node_robot_client_cannot_start_a_browser_login(sandbox: Sandbox) -> None:
    page = sandbox.authorize(requests.Session(), client_id=sandbox.node.client_id)
    assert page.status_code == 400 and 'name="nonce"' not in page.text


def test_the_code_is_bound_to_the_client_secret_and_the_redirect_uri(sandbox: Sandbox) -> None:
    wrong_secret = sandbox.exchange(sandbox.code(), client_secret="not-it")
    assert wrong_secret.status_code == 401 and wrong_secret.json()["code"] == "invalid_client"
    wrong_redirect = sandbox.exchange(sandbox.code(), redirect_uri="http://127.0.0.1:9/other")
    assert wrong_redirect.status_code == 400


def test_pkce_s256_needs_the_matching_verifier(sandbox: Sandbox) -> None:
    verifier = "a-verifier-of-enough-length-for-pkce-0123456789"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    args = {"code_challenge": challenge.rstrip(b"=").decode(), "code_challenge_method": "S256"}
    assert sandbox.exchange(sandbox.code(**args)).status_code == 400
    assert sandbox.exchange(sandbox.code(**args), code_verifier="other").status_code == 400
    assert sandbox.exchange(sandbox.code(**args), code_verifier=verifier).status_code == 200


def test_client_secret_basic_works_like_the_secret_in_the_body(sandbox: Sandbox) -> None:
    r = requests.post(
        f"{sandbox.url}/auth/token",
        data={"grant_type": "authorization_code", "code": sandbox.code(), "redirect_uri": CALLBACK},
        auth=(sandbox.client.client_id, sandbox.client.client_secret),
        timeout=10,
    )
    assert r.status_code == 200, r.text


def test_the_code_exchange_ignores_parameters_it_does_not_know(sandbox: Sandbox) -> None:
    """RFC 6749 3.2; oauthenticator sends ``data=None`` with every code exchange."""
    assert sandbox.exchange(sandbox.code(), data="None").status_code == 200


def test_a_web_client_may_not_use_the_client_credentials_grant(sandbox: Sandbox) -> None:
    r = requests.post(
        f"{sandbox.url}/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.client.client_id,
            "client_secret": sandbox.client.client_secret,
        },
        timeout=10,
    )
    assert r.status_code == 400 and r.json()["code"] == "unauthorized_client"


def test_the_refresh_token_from_a_login_renews_the_access_token(sandbox: Sandbox) -> None:
    pair = sandbox.exchange(sandbox.code()).json()
    renewed = requests.post(
        f"{sandbox.url}/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": pair["refresh_token"],
            "client_id": sandbox.client.client_id,
            "client_secret": sandbox.client.client_secret,
        },
        timeout=10,
    )
    assert renewed.status_code == 200 and renewed.json()["access_token"] != pair["access_token"]


def test_added_researchers_have_unique_names_and_log_in_with_their_password(
    sandbox: Sandbox, tmp_path
) -> None:
    r = requests.post(
        f"{sandbox.url}/auth/token",
        json={"grant_type": "password", "username": "carol", "password": sandbox.password},
        timeout=10,
    )
    assert r.status_code == 200
    store = Store(tmp_path / "hub")
    try:
        provision(store, node_names(2))
        add_researcher(store, "dave", "chosen password")
        with pytest.raises(ApiError) as exc:
            add_researcher(store, "dave")
    finally:
        store.close()
    assert exc.value.status == 409


def test_a_registered_client_shows_its_id_but_never_its_secret(sandbox: Sandbox) -> None:
    shown = repr(sandbox.client)
    assert sandbox.client.client_id in shown and sandbox.client.client_secret not in shown


def test_oauth_clients_are_stored_with_a_hashed_secret(tmp_path) -> None:
    store = Store(tmp_path / "hub")
    try:
        provision(store, node_names(2))
        client = add_oauth_client(store, "lab", CALLBACK)
        rows = store.execute(
            'SELECT "secretHash", "redirectUri" FROM clients WHERE "id" = ?', (client.client_id,)
        )
    finally:
        store.close()
    assert rows[0]["redirectUri"] == CALLBACK
    assert client.client_secret not in rows[0]["secretHash"]
