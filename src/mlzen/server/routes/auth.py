"""``/api/v1/auth``: log in (sets the session cookie), log out, and who am I."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from mlzen.server import throttle
from mlzen.server.auth import User, ViewerUser, end_session, set_session_cookie
from mlzen.server.deps import StoreDep
from mlzen.server.schemas import ErrorBody, LoginRequest, LoginResponse, Message

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/login",
    response_model=LoginResponse,
    responses={401: {"model": ErrorBody}, 429: {"model": ErrorBody}},
)
async def login(
    body: LoginRequest, request: Request, response: Response, store: StoreDep
) -> LoginResponse:
    """Check a user name and password; on success start a session (the
    ``mlzen_session`` cookie) and answer its CSRF token, which a request that changes
    something must send in the ``X-CSRF-Token`` header along with the cookie. Too many
    logins for one user or from one address answer 429 with ``Retry-After``."""
    address = request.client.host if request.client else "unknown"
    user = await run_in_threadpool(throttle.login, store, body.username, body.password, address)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="Wrong user name or password.")
    csrf_token = set_session_cookie(response, user, store=store)
    return LoginResponse(user=user, csrf_token=csrf_token)


@router.post("/logout", response_model=Message)
def logout(request: Request, response: Response, user: ViewerUser) -> Message:
    """End this browser's session: it is deleted on the server and the cookie cleared."""
    end_session(request, response)
    return Message(message=f"Logged out {user.name}.")


@router.get("/me", response_model=User)
def me(user: ViewerUser) -> User:
    """The calling user."""
    return user
