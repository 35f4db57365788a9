"""Projects, their questions and members, profiles and API tokens."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from annotation.authentication import hash_token
from annotation.errors import BallotError, Conflict, NotFound, ValidationFailed
from annotation.models import (
    AnnotatorProfile,
    ApiToken,
    Membership,
    Project,
    Question,
    QuestionKind,
    Role,
)
from annotation.parsers import json_check
from annotation.services.agreement import item_agreement_refresh
from annotation.services.overlap import MAX_WANTED as MAX_OVERLAP
from annotation.services.overlap import items_fullness_refresh
from annotation.services.quality import quality_summaries_rebuild

PROJECT_FIELDS = (
    "name",
    "instructions",
    "overlap",
    "gold_rate",
    "require_profile",
    "show_gold_feedback",
    "quality_threshold",
    "lease_seconds",
    "adaptive_overlap",
    "min_annotators",
    "max_annotators",
    "agreement_threshold",
    "confidence_threshold",
    "settings",
)

# Fields whose change moves how many annotators an item wants.
OVERLAP_RULE_FIELDS = ("overlap", "adaptive_overlap", "min_annotators")

DEFAULT_ERROR_CATEGORIES = ["factual", "reasoning", "instruction", "safety", "style", "other"]


def _rating_scale(config: dict, field: str) -> dict:
    scale = config.get("scale", {"min": 1, "max": 5})
    if isinstance(scale, (list, tuple)) and len(scale) == 2:
        scale = {"min": scale[0], "max": scale[1]}
    if not isinstance(scale, dict):
        raise ValidationFailed("Scale must be {min, max[, step, labels]}.", field=f"{field}.scale")
    try:
        low, high = float(scale.get("min", 1)), float(scale.get("max", 5))
        # step null means a continuous scale (e.g. imported means of several raters).
        step = None if scale.get("step", 1) is None else float(scale.get("step", 1))
    except (TypeError, ValueError):
        raise ValidationFailed("Scale bounds must be numbers.", field=f"{field}.scale")
    if not low < high:
        raise ValidationFailed("Scale min must be below max.", field=f"{field}.scale")
    if step is not None and step <= 0:
        raise ValidationFailed(
            "Scale step must be positive (or null for continuous).", field=f"{field}.scale.step"
        )
    labels = scale.get("labels", {})
    if not isinstance(labels, dict):
        raise ValidationFailed("Scale labels map values to words.", field=f"{field}.scale.labels")
    as_int = low.is_integer() and high.is_integer() and (step is None or step.is_integer())
    norm = (lambda v: int(v)) if as_int else (lambda v: v)
    return {
        "min": norm(low),
        "max": norm(high),
        "step": None if step is None else norm(step),
        "labels": labels,
    }


def question_config_validate(*, kind: str, config: Any, field: str = "config") -> dict:
    """Check and normalise a question's config for its kind; raise ``ValidationFailed`` otherwise.

    - pairwise: ``allow_tie`` (bool, default true), ``strength_scale`` ({min, max} or null, default 1-3)
    - ranking: ``allow_ties`` (bool, default true)
    - rating: ``aspects`` (names or {name, description}, at least one), ``scale`` ({min, max, step})
    - correction: ``categories`` (names), ``require_category`` (bool)
    """
    if config is None:
        config = {}
    json_check(config, field=field)
    if not isinstance(config, dict):
        raise ValidationFailed("Config must be an object.", field=field)
    if kind == QuestionKind.PAIRWISE:
        strength = config.get("strength_scale", {"min": 1, "max": 3})
        if strength is not None:
            if isinstance(strength, (list, tuple)) and len(strength) == 2:
                strength = {"min": strength[0], "max": strength[1]}
            if (
                not isinstance(strength, dict)
                or not isinstance(strength.get("min"), int)
                or not isinstance(strength.get("max"), int)
                or not 0 <= strength["min"] < strength["max"] <= 10
            ):
                raise ValidationFailed(
                    "strength_scale must be {min, max} integers with 0 <= min < max <= 10, or null.",
                    field=f"{field}.strength_scale",
                )
            strength = {
                "min": strength["min"],
                "max": strength["max"],
                "labels": strength.get("labels", {}),
            }
        return {"allow_tie": bool(config.get("allow_tie", True)), "strength_scale": strength}
    if kind == QuestionKind.RANKING:
        return {"allow_ties": bool(config.get("allow_ties", True))}
    if kind == QuestionKind.RATING:
        aspects_raw = config.get("aspects", [])
        if not isinstance(aspects_raw, list) or not aspects_raw:
            raise ValidationFailed(
                "A rating question needs at least one aspect.", field=f"{field}.aspects"
            )
        aspects = []
        for index, aspect in enumerate(aspects_raw):
            if isinstance(aspect, str):
                aspect = {"name": aspect}
            name = aspect.get("name") if isinstance(aspect, dict) else None
            if not isinstance(name, str) or not name.strip() or len(name) > 64:
                raise ValidationFailed(
                    "Each aspect needs a name (1-64 characters).", field=f"{field}.aspects[{index}]"
                )
            entry = {"name": name.strip(), "description": str(aspect.get("description", ""))}
            if isinstance(aspect, dict) and aspect.get("scale") is not None:
                # An aspect may carry its own scale (e.g. 0-1 groundedness beside 1-5 overall).
                entry["scale"] = _rating_scale(aspect, f"{field}.aspects[{index}]")
            aspects.append(entry)
        names = [a["name"] for a in aspects]
        if len(set(names)) != len(names):
            raise ValidationFailed("Aspect names must be unique.", field=f"{field}.aspects")
        return {"aspects": aspects, "scale": _rating_scale(config, field)}
    if kind == QuestionKind.CORRECTION:
        categories = config.get("categories", DEFAULT_ERROR_CATEGORIES)
        if not isinstance(categories, list) or not all(
            isinstance(c, str) and c for c in categories
        ):
            raise ValidationFailed(
                "categories must be a list of names.", field=f"{field}.categories"
            )
        return {
            "categories": categories,
            "require_category": bool(config.get("require_category", False)),
        }
    raise ValidationFailed(
        f"Unknown question kind {kind!r}; use one of {', '.join(QuestionKind.values)}.",
        field="kind",
    )


def _project_fields_validate(fields: dict, project: Project | None = None) -> dict:
    clean = {k: v for k, v in fields.items() if k in PROJECT_FIELDS}
    # Forms reach here too: NUL bytes, non-finite numbers and deep nesting get a 400 here,
    # not a database error on insert.
    json_check(clean)
    if "settings" in clean and not isinstance(clean["settings"], dict):
        raise ValidationFailed("settings must be a JSON object.", field="settings")
    if "name" in clean and not str(clean["name"]).strip():
        raise ValidationFailed("A project needs a name.", field="name")
    if "overlap" in clean and (
        not isinstance(clean["overlap"], int) or not 1 <= clean["overlap"] <= MAX_OVERLAP
    ):
        raise ValidationFailed(
            f"overlap must be an integer from 1 to {MAX_OVERLAP}.", field="overlap"
        )
    if "gold_rate" in clean:
        try:
            clean["gold_rate"] = float(clean["gold_rate"])
        except (TypeError, ValueError):
            raise ValidationFailed("gold_rate must be a number.", field="gold_rate")
        if not 0 <= clean["gold_rate"] <= 1:
            raise ValidationFailed("gold_rate must lie in [0, 1].", field="gold_rate")
    if "lease_seconds" in clean and (
        not isinstance(clean["lease_seconds"], int) or not 30 <= clean["lease_seconds"] <= 7 * 86400
    ):
        raise ValidationFailed("lease_seconds must be from 30 to 604800.", field="lease_seconds")
    # Against the stored other end: a PATCH may send only one of min and max.
    _adaptive_fields_validate(clean, project)
    if "quality_threshold" in clean:
        # The API's serializer bounds it too; forms reach here without one.
        try:
            clean["quality_threshold"] = float(clean["quality_threshold"])
        except (TypeError, ValueError):
            raise ValidationFailed("quality_threshold must be a number.", field="quality_threshold")
        if not 0 <= clean["quality_threshold"] <= 1:
            raise ValidationFailed(
                "quality_threshold must lie in [0, 1].", field="quality_threshold"
            )
    return clean


def _unit_float(clean: dict, name: str, *, nullable: bool = False) -> None:
    if name not in clean or (nullable and clean[name] is None):
        return
    value = clean[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationFailed(f"{name} must be a number.", field=name)
    if not 0 <= value <= 1:
        raise ValidationFailed(f"{name} must lie in [0, 1].", field=name)
    clean[name] = float(value)


def _adaptive_fields_validate(clean: dict, project: Project | None = None) -> None:
    """Bounds of the adaptive-overlap fields, and min <= max against the stored other end."""
    if "adaptive_overlap" in clean and not isinstance(clean["adaptive_overlap"], bool):
        raise ValidationFailed("adaptive_overlap must be true or false.", field="adaptive_overlap")
    for name in ("min_annotators", "max_annotators"):
        if name in clean and (
            not isinstance(clean[name], int)
            or isinstance(clean[name], bool)
            or not 1 <= clean[name] <= MAX_OVERLAP
        ):
            raise ValidationFailed(
                f"{name} must be an integer from 1 to {MAX_OVERLAP}.", field=name
            )
    _unit_float(clean, "agreement_threshold")
    _unit_float(clean, "confidence_threshold", nullable=True)
    stored = {
        name: getattr(project, name) if project else Project._meta.get_field(name).default
        for name in ("min_annotators", "max_annotators")
    }
    low = clean.get("min_annotators", stored["min_annotators"])
    high = clean.get("max_annotators", stored["max_annotators"])
    if low > high:
        # Name the field the caller sent: that is the one to change.
        field = "max_annotators" if "max_annotators" in clean else "min_annotators"
        raise ValidationFailed(
            f"min_annotators ({low}) must not exceed max_annotators ({high}).", field=field
        )


@transaction.atomic
def project_create(
    *, user: AbstractBaseUser, name: str, questions: list[dict] | None = None, **fields: Any
) -> Project:
    """Create a project with its questions; the creator becomes its admin."""
    clean = _project_fields_validate({"name": name, **fields})
    project = Project.objects.create(created_by=user, **clean)
    Membership.objects.create(user=user, project=project, role=Role.ADMIN)
    for index, spec in enumerate(questions or []):
        question_create(
            project=project,
            position=spec.get("position", index),
            field=f"questions[{index}]",
            **{k: v for k, v in spec.items() if k != "position"},
        )
    return project


@transaction.atomic
def project_update(*, project: Project, **fields: Any) -> Project:
    clean = _project_fields_validate(fields, project)
    base_before = project.base_overlap
    for key, value in clean.items():
        setattr(project, key, value)
    project.save(update_fields=list(clean) or None)
    if any(name in clean for name in OVERLAP_RULE_FIELDS) and project.base_overlap != base_before:
        items_fullness_refresh(project=project)
    return project


@transaction.atomic
def project_delete(*, project: Project) -> None:
    """Delete a project with everything in it (items, answers, memberships, jobs)."""
    project.delete()


MAX_QUESTION_POSITION = 32767  # the column is a PositiveSmallIntegerField


def _position_check(position: Any, field: str) -> None:
    if (
        not isinstance(position, int)
        or isinstance(position, bool)
        or not 0 <= position <= MAX_QUESTION_POSITION
    ):
        raise ValidationFailed(
            f"position must be an integer from 0 to {MAX_QUESTION_POSITION}.", field=field
        )


def question_create(
    *,
    project: Project,
    kind: str,
    name: str | None = None,
    prompt: str = "",
    position: int | None = None,
    required: bool = True,
    config: dict | None = None,
    field: str = "",
) -> Question:
    """Add a question to a project, its config validated for its kind."""
    prefix = f"{field}." if field else ""
    normalized = question_config_validate(kind=kind, config=config or {}, field=f"{prefix}config")
    slug = slugify(name or kind)[:64]
    if not slug:
        raise ValidationFailed(
            "A question needs a name made of letters, digits or dashes.", field=f"{prefix}name"
        )
    if position is None:
        position = Question.objects.filter(project=project).count()
    _position_check(position, f"{prefix}position")
    try:
        with transaction.atomic():
            return Question.objects.create(
                project=project,
                kind=kind,
                name=slug,
                prompt=prompt or "",
                position=position,
                required=required,
                config=normalized,
            )
    except IntegrityError:
        raise Conflict(
            f"This project already has a question named {slug!r}.", field=f"{prefix}name"
        )


def question_update(*, question: Question, **fields: Any) -> Question:
    if ("config" in fields or "kind" in fields) and _question_has_answers(question):
        raise Conflict(
            "This question already has answers; its kind and config can no longer change."
        )
    if "config" in fields or "kind" in fields:
        kind = fields.get("kind", question.kind)
        question.config = question_config_validate(
            kind=kind, config=fields.get("config", question.config)
        )
        question.kind = kind
    if "position" in fields:
        _position_check(fields["position"], "position")
    for key in ("prompt", "position", "required"):
        if key in fields:
            setattr(question, key, fields[key])
    if "name" in fields:
        slug = slugify(fields["name"] or "")[:64]
        if not slug:
            # "~" or "" would slug to "", which no answer could ever name.
            raise ValidationFailed(
                "A question needs a name made of letters, digits or dashes.", field="name"
            )
        question.name = slug
    try:
        with transaction.atomic():
            question.save()
    except IntegrityError:
        raise Conflict("This project already has a question with that name.", field="name")
    return question


@transaction.atomic
def question_delete(*, question: Question) -> None:
    """Delete a question and the answers given to it (and refresh the agreement they fed)."""
    judged: list[int] = []
    if question.kind == QuestionKind.PAIRWISE:
        judged = list(
            question.project.items.filter(annotations__pairwise_answers__question=question)
            .values_list("id", flat=True)
            .distinct()
        )
    project_id = question.project_id
    question.delete()
    item_agreement_refresh(item_ids=judged)
    # The annotator counters pooled this question's answers: recount the project.
    quality_summaries_rebuild(project_id=project_id)


QUESTION_SPEC_FIELDS = ("kind", "name", "prompt", "required", "config")


def _prefixed(error: BallotError, prefix: str) -> BallotError:
    """The same error with its field paths under ``prefix`` (``questions[2].``)."""
    field = f"{prefix}{error.field}" if error.field else prefix.rstrip(".")
    errors = [
        {**entry, "field": f"{prefix}{entry['field']}" if entry.get("field") else field}
        for entry in error.errors
    ] or [{"field": field, "detail": error.detail}]
    return type(error)(error.detail, field=field, errors=errors)


def questions_validate(*, questions: Any) -> None:
    """Check every question spec of a set-up form at once; one error per bad field, all listed.

    Only what needs no database: kinds, configs and names. Name clashes with stored
    questions and answered questions are found by the writes themselves.
    """
    if not isinstance(questions, list):
        raise ValidationFailed("questions must be a list.", field="questions")
    json_check(questions, field="questions")
    errors: list[dict] = []
    names: dict[str, int] = {}
    for index, spec in enumerate(questions):
        prefix = f"questions[{index}]"
        if not isinstance(spec, dict):
            errors.append({"field": prefix, "detail": "Each question must be an object."})
            continue
        kind = spec.get("kind")
        try:
            question_config_validate(kind=kind, config=spec.get("config"), field=f"{prefix}.config")
        except ValidationFailed as error:
            errors.extend(error.errors or [{"field": error.field, "detail": error.detail}])
        slug = slugify(str(spec.get("name") or kind or ""))[:64]
        if not slug:
            errors.append(
                {
                    "field": f"{prefix}.name",
                    "detail": "A question needs a name made of letters, digits or dashes.",
                }
            )
        elif slug in names:
            errors.append(
                {"field": f"{prefix}.name", "detail": f"Another question is named {slug!r}."}
            )
        names.setdefault(slug, index)
        if len(str(spec.get("prompt") or "")) > 500:
            errors.append(
                {"field": f"{prefix}.prompt", "detail": "A prompt holds at most 500 characters."}
            )
    if errors:
        first = errors[0]
        raise ValidationFailed(first["detail"], field=first["field"], errors=errors)


@transaction.atomic
def project_setup_save(
    *,
    user: AbstractBaseUser,
    project: Project | None = None,
    fields: dict[str, Any],
    questions: list[dict],
) -> Project:
    """Create (``project=None``) or change a project and its whole question list in one go.

    ``questions`` is the list as the set-up page shows it, in order: an entry with an
    ``id`` of one of the project's questions changes that question, one without adds
    a question, and stored questions left out are deleted. Positions follow the list.
    All or nothing; errors name the field as ``questions[i].config.aspects`` etc.
    """
    questions_validate(questions=questions)
    specs = [{k: spec[k] for k in QUESTION_SPEC_FIELDS if k in spec} for spec in questions]
    if project is None:
        fields = dict(fields)
        return project_create(user=user, name=fields.pop("name", ""), questions=specs, **fields)
    project_update(project=project, **fields)
    stored = {q.id: q for q in Question.objects.select_for_update().filter(project=project)}
    kept = {spec.get("id") for spec in questions if spec.get("id") in stored}
    for question_id, question in stored.items():
        if question_id not in kept:
            question_delete(question=question)
    # Positions are not unique, but names are: renames that swap two names would clash
    # mid-way, so the kept questions first move to temporary names.
    for question_id in kept:
        Question.objects.filter(pk=question_id).update(name=f"~{question_id}")
    for index, (raw, spec) in enumerate(zip(questions, specs, strict=True)):
        prefix = f"questions[{index}]."
        try:
            question = stored.get(raw.get("id")) if raw.get("id") in kept else None
            if question is None:
                question_create(project=project, position=index, **spec)
                continue
            changes: dict[str, Any] = {"position": index, "name": spec.get("name") or spec["kind"]}
            changes.update({k: spec[k] for k in ("prompt", "required") if k in spec})
            config = question_config_validate(kind=spec["kind"], config=spec.get("config"))
            if spec["kind"] != question.kind or config != question.config:
                # Only a real change is sent: an answered question refuses any config write.
                changes.update(kind=spec["kind"], config=config)
            question_update(question=question, **changes)
        except BallotError as error:
            raise _prefixed(error, prefix) from None
    return project


def _question_has_answers(question: Question) -> bool:
    from annotation.models import CorrectionAnswer, PairwiseAnswer, RankingAnswer, RatingAnswer

    return any(
        model.objects.filter(question=question).exists()
        for model in (PairwiseAnswer, RankingAnswer, RatingAnswer, CorrectionAnswer)
    )


def membership_add(*, project: Project, username: str, role: str = Role.ANNOTATOR) -> Membership:
    """Add a user, named by username or (when no username matches) by e-mail address."""
    if role not in Role.values:
        raise ValidationFailed(f"role must be one of {', '.join(Role.values)}.", field="role")
    users = get_user_model().objects
    user = users.filter(username=username).first()
    if user is None and "@" in username:
        # E-mail addresses are not unique in Django's user model: refuse to guess between two.
        matches = list(users.filter(email__iexact=username.strip())[:2])
        if len(matches) > 1:
            raise ValidationFailed(
                f"Several users have the e-mail address {username!r}; add one by username.",
                field="username",
            )
        user = matches[0] if matches else None
    if user is None:
        raise ValidationFailed(f"No user named {username!r}.", field="username")
    try:
        with transaction.atomic():
            return Membership.objects.create(project=project, user=user, role=role)
    except IntegrityError:
        raise Conflict(f"{username} is already a member of this project.", field="username")


def membership_update(*, membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(f"role must be one of {', '.join(Role.values)}.", field="role")
    with transaction.atomic():
        if membership.role == Role.ADMIN and role != Role.ADMIN:
            _keep_one_admin(membership)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    if membership.role == Role.ADMIN:
        _keep_one_admin(membership)
    membership.delete()


def _keep_one_admin(membership: Membership) -> None:
    admins = Membership.objects.select_for_update().filter(
        project=membership.project, role=Role.ADMIN
    )
    if admins.exclude(pk=membership.pk).count() == 0:
        raise Conflict("A project keeps at least one admin.", field="role")


PROFILE_FIELDS = (
    "age_band",
    "gender",
    "birth_country",
    "residence_country",
    "languages",
    "education",
    "employment",
    "expertise",
    "llm_familiarity",
    "llm_use_frequency",
    "stated_preferences",
    "self_description",
)
# Profile fields with one categorical answer per annotator: what curators may group and
# filter by (quality breakdown, export filters). Free text and lists are not among them.
CATEGORICAL_PROFILE_FIELDS = (
    "age_band",
    "gender",
    "birth_country",
    "residence_country",
    "education",
    "employment",
    "llm_familiarity",
    "llm_use_frequency",
)
# The profile's plain text fields (the rest are lists and maps).
TEXT_PROFILE_FIELDS = (*CATEGORICAL_PROFILE_FIELDS, "self_description")
PREFERENCE_KEYS = (
    "factuality",
    "safety",
    "creativity",
    "fluency",
    "helpfulness",
    "personalisation",
    "diversity",
    "values",
)
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+", "prefer_not_to_say", "")
LANGUAGE_PROFICIENCY = ("native", "fluent", "intermediate", "basic")


def profile_get_or_create(*, user: AbstractBaseUser) -> AnnotatorProfile:
    """The user's profile, created empty (no consent, nothing answered) on first use."""
    profile, _ = AnnotatorProfile.objects.get_or_create(user=user)
    return profile


def profile_update(
    *, user: AbstractBaseUser, consent: bool | None = None, **fields: Any
) -> AnnotatorProfile:
    """Create or update the user's profile. ``consent=True`` records consent time once."""
    profile, _ = AnnotatorProfile.objects.get_or_create(user=user)
    clean = {k: v for k, v in fields.items() if k in PROFILE_FIELDS}
    json_check(clean)
    if "age_band" in clean and clean["age_band"] not in (*AGE_BANDS, None):
        raise ValidationFailed(
            f"age_band must be one of {', '.join(a for a in AGE_BANDS if a)}.", field="age_band"
        )
    if "languages" in clean:
        langs = clean["languages"]
        if not isinstance(langs, list):
            raise ValidationFailed("languages must be a list.", field="languages")
        for index, entry in enumerate(langs):
            if isinstance(entry, str):
                entry = {"language": entry}
            if not isinstance(entry, dict) or not str(entry.get("language", "")).strip():
                raise ValidationFailed(
                    "Each language needs a name.", field=f"languages[{index}].language"
                )
            # An unstated proficiency stays unstated (null), never a guessed default.
            entry = {**entry, "proficiency": entry.get("proficiency") or None}
            langs[index] = entry
            if (
                entry["proficiency"] is not None
                and entry["proficiency"] not in LANGUAGE_PROFICIENCY
            ):
                raise ValidationFailed(
                    f"proficiency must be one of {', '.join(LANGUAGE_PROFICIENCY)}.",
                    field=f"languages[{index}].proficiency",
                )
    if "expertise" in clean and (
        not isinstance(clean["expertise"], list)
        or not all(isinstance(x, str) for x in clean["expertise"])
    ):
        raise ValidationFailed("expertise must be a list of domain names.", field="expertise")
    if "stated_preferences" in clean:
        prefs = clean["stated_preferences"]
        if not isinstance(prefs, dict):
            raise ValidationFailed(
                "stated_preferences maps behaviours to 0-100.", field="stated_preferences"
            )
        for key, value in prefs.items():
            if key not in PREFERENCE_KEYS:
                raise ValidationFailed(
                    f"Unknown behaviour {key!r}; use {', '.join(PREFERENCE_KEYS)}.",
                    field=f"stated_preferences.{key}",
                )
            if value is not None and (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not 0 <= value <= 100
            ):
                raise ValidationFailed(
                    "Importance must be a number from 0 to 100, or null for no answer.",
                    field=f"stated_preferences.{key}",
                )
        # Every behaviour is present; null marks the ones the annotator left unanswered.
        clean["stated_preferences"] = {key: prefs.get(key) for key in PREFERENCE_KEYS}
    for key in TEXT_PROFILE_FIELDS:
        if key not in clean or clean[key] is None:
            continue
        if not isinstance(clean[key], str):
            raise ValidationFailed("Must be text or null.", field=key)
        # A blank answer is no answer: store NULL so curators and exports see "unanswered".
        clean[key] = clean[key].strip() or None
    for key, value in clean.items():
        setattr(profile, key, value)
    now = timezone.now()
    if consent and profile.consented_at is None:
        profile.consented_at = now
    if consent is False:
        profile.consented_at = None
    if clean and profile.consented_at is not None:
        profile.completed_at = now
    profile.save()
    return profile


def token_create(*, user: AbstractBaseUser, name: str = "") -> tuple[ApiToken, str]:
    """A new API token. Returns the row and the raw secret, which is never stored."""
    raw = secrets.token_urlsafe(30)
    token = ApiToken.objects.create(
        user=user, name=name[:100], prefix=raw[:8], key_hash=hash_token(raw)
    )
    return token, raw


def user_by_username(username: str) -> AbstractBaseUser:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"No user named {username!r}.")
    return user
