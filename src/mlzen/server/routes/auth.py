"""``/api/v1/auth``: log in (sets the session cookie), log out, and who am I."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.concurrency import run_in_threadpool

from mlzen.server.auth import (
    User,
    ViewerUser,
    authenticate_password,
    clear_session_cookie,
    set_session_cookie,
)
from mlzen.server.deps import StoreDep
from mlzen.server.schemas import LoginRequest, LoginResponse, Message

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=LoginResponse)
async def login(body: LoginRequest, response: Response, store: StoreDep) -> LoginResponse:
    """Check a user name and password; on success set the ``mlzen_session`` cookie."""
    user = await run_in_threadpool(authenticate_password, store, body.username, body.password)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="Wrong user name or password.")
    set_session_cookie(response, user, store=store)
    return LoginResponse(user=user)


@router.post("/logout", response_model=Message)
def logout(response: Response, user: ViewerUser) -> Message:
    """End this browser's session (the cookie is cleared)."""
    clear_session_cookie(response)
    return Message(message=f"Logged out {user.name}.")


@router.get("/me", response_model=User)
def me(user: ViewerUser) -> User:
    """The calling user."""
    return user
