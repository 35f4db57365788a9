"""How annotators are named to the people who look at their work.

The rule, everywhere (pages, API, quality report, exports): curators see a
pseudonym, never a username; a project's admins (and superusers, who act as
admins of every project) also see the username next to it, because they manage
the members and must be able to reach a person. An annotator's pseudonym is
stable within a project and differs between projects, so two projects' curators
cannot join their views. Exports use a fresh per-export key instead (see
``curation.exports.formats.pseudonymise``), so even admins see no usernames there.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

from annotation.models import Role


def pseudonym(user_id: int, salt: str = "") -> str:
    """A stable pseudonymous id for an annotator (keyed hash; not reversible without the secret).

    ``salt`` is the project id as text, so the same person has unrelated names in two projects.
    """
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"{salt}:{user_id}".encode(), hashlib.sha256
    ).hexdigest()
    return f"ann-{digest[:12]}"


def may_reveal_usernames(role: str | None) -> bool:
    """Whether someone with ``role`` in a project sees annotators' usernames next to their pseudonyms."""
    return role == Role.ADMIN
