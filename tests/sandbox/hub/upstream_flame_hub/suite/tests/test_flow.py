import httpx2 as httpx
import pytest

from flame_hub import HubAPIError, AuthClient
from flame_hub.auth import PasswordAuth, ClientAuth, StaticAuth
from flame_hub.models import RefreshToken
from tests.helpers import next_random_string

pytestmark = pytest.mark.integration


def test_password_auth_reissue(password_auth, auth_base_url):
    # instantiate client
    client = httpx.Client(auth=password_auth)
    r = client.get(auth_base_url)
    assert r.status_code == httpx.codes.OK.value

    # get a copy of the current access token
    old_token = client.auth._current_token.access_token
    # reset expiration timestamp to force token request with refresh token
    client.auth._current_token_expires_at_nanos = 0

    r = client.get(auth_base_url)
    assert r.status_code == httpx.codes.OK.value

    # check that the token has indeed changed
    assert client.auth._current_token.access_token != old_token


def test_client_auth(auth_client, auth_base_url, master_realm):
    client_secret = next_random_string(length=64)
    client_resource = auth_client.create_client(name=next_random_string(), realm_id=master_realm, secret=client_secret)
    client_id = str(client_resource.id)

    client_auth = ClientAuth(
        client_id=client_id,
        client_secret=client_secret,
        base_url=auth_base_url,
    )

    client = httpx.Client(auth=client_auth)

    # Check that the auth flow works.
    r = client.get(auth_base_url)
    assert r.status_code == httpx.codes.OK.value

    auth_client.delete_client(client_resource)


def test_client_auth_raise_error(nginx, auth_base_url):
    # Use random client_id and client_secret.
    client_auth = ClientAuth(client_id=next_random_string(), client_secret=next_random_string(), base_url=auth_base_url)
    client = httpx.Client(auth=client_auth)

    # This call should fail.
    with pytest.raises(HubAPIError) as e:
        client.get(auth_base_url)

    assert "Client authentication failed" in str(e.value)
    assert e.value.error_response.status_code == httpx.codes.UNAUTHORIZED.value


def test_password_auth_raise_error(nginx, auth_base_url):
    # use random username and password
    pw_auth = PasswordAuth(next_random_string(), next_random_string(), auth_base_url)
    client = httpx.Client(auth=pw_auth)

    # this call should fail
    with pytest.raises(HubAPIError) as e:
        client.get(auth_base_url)

    assert "The user credentials are invalid" in str(e.value)
    assert e.value.error_response.status_code == httpx.codes.BAD_REQUEST.value


def test_password_auth_reissue_raise_error(password_auth, auth_base_url):
    # instantiate client
    client = httpx.Client(auth=password_auth)
    # fetch refresh token
    r = client.get(auth_base_url)
    assert r.status_code == httpx.codes.OK.value

    # need to create a new instance as to avoid modifying the password_auth fixture
    # otherwise this will affect other tests
    new_client = httpx.Client(auth=PasswordAuth(password_auth._username, password_auth._password, auth_base_url))

    # copy existing token and reset expiration timestamp
    new_client.auth._current_token = client.auth._current_token.model_copy()
    new_client.auth._current_token_expires_at_nanos = 0

    # overwrite refresh token
    new_client.auth._current_token.refresh_token = "foobar"

    # technically it would be better to have a properly signed JWT as the refresh token but
    # that would require forging it. no clue how to feasibly do that.
    with pytest.raises(HubAPIError) as e:
        new_client.get(auth_base_url)

    assert "The JWT is invalid" in str(e.value)
    assert e.value.error_response.status_code == httpx.codes.BAD_REQUEST.value


def test_static_auth(auth_base_url, auth_admin_username, auth_admin_password):
    r = httpx.post(
        f"{auth_base_url}/token",
        json={
            "grant_type": "password",
            "username": auth_admin_username,
            "password": auth_admin_password,
        },
    )

    assert r.status_code == httpx.codes.OK.value

    token = RefreshToken(**r.json())
    auth = StaticAuth(access_token=token.access_token)

    r = httpx.get(auth_base_url, auth=auth)

    assert r.status_code == httpx.codes.OK.value


def test_static_auth_raise_error(auth_base_url):
    auth = StaticAuth(access_token=next_random_string())
    client = AuthClient(base_url=auth_base_url, auth=auth)

    with pytest.raises(HubAPIError) as e:
        client.get_users()

    assert "The JWT is invalid" in str(e.value)
    assert e.value.error_response.status_code == httpx.codes.BAD_REQUEST.value
