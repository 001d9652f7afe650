"""The signing secret as pasted: what is refused at start, and how it is described."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from batcher.cli import main
from batcher.client import AuthMode
from batcher.errors import UsageError
from batcher.secret import check_secret

S = "Zq7xK2mP9vL4nR8tW3yB6cF1"  # a secret: 24 ASCII letters and digits
NOT_ASCII = "not ASCII"


@pytest.mark.parametrize(
    ("secret", "mode", "fault", "them"),
    [
        (S + "\n", "bearer", "ends with a newline", "it"),
        (S + "\r\n", "hmac", "ends with a Windows line break (CR LF)", "them"),
        (S + "\r", "bearer", "ends with a carriage return", "it"),
        (" " + S, "bearer", "starts with a space", "it"),
        ("  " + S + " ", "hmac", "starts with 2 spaces and ends with a space", "them"),
        ("\t" + S, "bearer", "starts with a tab", "it"),
        (S + "\u00a0", "hmac", "ends with an invisible character", "it"),
        (S[:8] + "\n" + S[8:], "bearer", "holds a newline at position 9", "it"),
        (S[:4] + "\t" + S[4:8] + "\t" + S[8:], "hmac", "holds tabs at positions 5 and 10", "them"),
        ("\u200b" + S, "hmac", "holds an invisible character at position 1", "it"),
        (S[:3] + "\x00" + S[3:], "hmac", "holds an invisible character at position 4", "it"),
        (S + "é", "bearer", f"holds a character that is {NOT_ASCII} at position 25", "it"),
        (
            "é" + S + "ü",
            "bearer",
            f"holds characters that are {NOT_ASCII} at positions 1 and 26",
            "them",
        ),
        (
            S + "\ré\n",
            "bearer",
            "ends with a newline and holds a carriage return at position 25 and a character "
            f"that is {NOT_ASCII} at position 26",
            "them",
        ),
        ("\n".join("abcdefg"), "hmac", "holds newlines at positions 2, 4, 6 and 3 more", "them"),
    ],
)
def test_refused_secrets_say_what_and_where(
    secret: str, mode: AuthMode, fault: str, them: str
) -> None:
    """A stray character is named by kind and position; the secret itself never appears."""
    with pytest.raises(UsageError) as refused:
        check_secret(secret, mode)
    message = f"CHERT_SIGNING_SECRET {fault}: copy it again without {them}."
    assert refused.value.message == message
    assert S[:6] not in str(refused.value)
    assert "Nothing was read or sent." in refused.value.hint


@pytest.mark.parametrize(
    ("secret", "mode"),
    [
        (S, "bearer"),
        (S, "hmac"),
        ("sk_live/ab+cd=_-.~", "bearer"),  # punctuation a token may hold
        ("two words", "bearer"),  # a space inside is a legal header value
        ("clé-secrète", "hmac"),  # HMAC keys with the secret's UTF-8 bytes
    ],
)
def test_accepted_secrets(secret: str, mode: AuthMode) -> None:
    """A secret without stray characters passes, and non-ASCII passes for HMAC."""
    check_secret(secret, mode)


def test_a_blank_secret() -> None:
    """A secret of blanks only is called blank, not a list of stray characters."""
    with pytest.raises(UsageError) as refused:
        check_secret(" \n", "bearer")
    assert refused.value.message == "CHERT_SIGNING_SECRET holds only blank characters."


def test_bearer_non_ascii_points_at_hmac() -> None:
    """A bearer secret with a non-ASCII character says that HMAC can sign with it."""
    with pytest.raises(UsageError) as refused:
        check_secret("clé-secrète", "bearer")
    assert "sign with --auth hmac" in refused.value.hint


def test_the_sandbox_command_refuses_a_mangled_secret_too() -> None:
    """`chert-batch sandbox` serves CHERT_SIGNING_SECRET: the same rule, before listening."""
    env = {"CHERT_SIGNING_SECRET": S + "\n"}
    result = CliRunner().invoke(main, ["sandbox", "--port", "0"], env=env)
    assert result.exit_code == 2
    assert "Error: CHERT_SIGNING_SECRET ends with a newline: copy it again without it." in (
        result.output
    )
    assert "listening" not in result.output
