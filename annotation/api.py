"""REST API for collecting feedback. Views parse input, call one service or selector, serialize output."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers as drf_serializers
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response as HttpResponse
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from annotation import selectors, serializers, services
from annotation.errors import Conflict, PayloadTooLarge, ValidationFailed, validated
from annotation.pagination import paginate
from annotation.parsers import JsonLinesParser, JsonlParser
from annotation.pseudonyms import may_reveal_usernames, pseudonym
from annotation.selectors import ADMIN_ONLY, STAFF_ROLES
from annotation.services.imports import ON_CONFLICT

if TYPE_CHECKING:
    from annotation.models import Membership, Question


def _flag(value: str | None, field: str) -> bool:
    if value in (None, "", "0", "false", "False", "no"):
        return False
    if value in ("1", "true", "True", "yes"):
        return True
    raise ValidationFailed(f"{field} must be 1 or 0 (true or false).", field=field)


# --- projects --------------------------------------------------------------------


class ProjectListApi(APIView):
    @extend_schema(responses=serializers.ProjectOut(many=True), summary="List my projects")
    def get(self, request: Request) -> HttpResponse:
        projects = selectors.project_list_for(user=request.user).prefetch_related("questions")
        roles = selectors.membership_roles_for(user=request.user)
        return paginate(self, request, projects, serializers.ProjectOut, context={"roles": roles})

    @extend_schema(
        request=serializers.ProjectIn,
        responses={201: serializers.ProjectOut},
        summary="Create a project",
    )
    def post(self, request: Request) -> HttpResponse:
        data = validated(serializers.ProjectIn, request.data)
        questions = [dict(q) for q in data.pop("questions", [])]
        project = services.project_create(user=request.user, questions=questions, **data)
        return HttpResponse(
            # project_create makes its creator the project's admin.
            serializers.ProjectOut(project, context={"roles": {project.id: ADMIN_ONLY[0]}}).data,
            status=status.HTTP_201_CREATED,
        )


class ProjectDetailApi(APIView):
    @extend_schema(responses=serializers.ProjectOut, summary="Read a project")
    def get(self, request: Request, project_id: int) -> HttpResponse:
        project, role = selectors.project_get_for(user=request.user, project_id=project_id)
        return HttpResponse(
            serializers.ProjectOut(project, context={"roles": {project.id: role}}).data
        )

    @extend_schema(
        request=serializers.ProjectPatch,
        responses=serializers.ProjectOut,
        summary="Change a project (admin)",
    )
    def patch(self, request: Request, project_id: int) -> HttpResponse:
        project, role = selectors.project_get_for(
            user=request.user, project_id=project_id, roles=ADMIN_ONLY
        )
        data = validated(serializers.ProjectPatch, request.data, partial=True)
        project = services.project_update(project=project, **data)
        return HttpResponse(
            serializers.ProjectOut(project, context={"roles": {project.id: role}}).data
        )

    @extend_schema(responses={204: None}, summary="Delete a project (admin)")
    def delete(self, request: Request, project_id: int) -> HttpResponse:
        project, _ = selectors.project_get_for(
            user=request.user, project_id=project_id, roles=ADMIN_ONLY
        )
        services.project_delete(project=project)
        return HttpResponse(status=status.HTTP_204_NO_CONTENT)


# --- questions ---------------------------------------------------------------------


class QuestionListApi(APIView):
    @extend_schema(
        responses=serializers.QuestionOut(many=True), summary="List a project's questions"
    )
    def get(self, request: Request, project_id: int) -> HttpResponse:
        project, _ = selectors.project_get_for(user=request.user, project_id=project_id)
        return HttpResponse(
            serializers.QuestionOut(selectors.question_list(project=project), many=True).data
        )

    @extend_schema(
        request=serializers.QuestionIn,
        responses={201: serializers.QuestionOut},
        summary="Add a question (admin)",
    )
    def post(self, request: Request, project_id: int) -> HttpResponse:
        project, _ = selectors.project_get_for(
            user=request.user, project_id=project_id, roles=ADMIN_ONLY
        )
        data = validated(serializers.QuestionIn, request.data)
        question = services.question_create(project=project, **data)
        return HttpResponse(serializers.QuestionOut(question).data, status=status.HTTP_201_CREATED)


class QuestionDetailApi(APIView):
    def _get(self, request: Request, project_id: int, question_id: int, roles=None) -> Question:
        project, _ = selectors.project_get_for(
            user=request.user, project_id=project_id, roles=roles
        )
        return selectors.question_get(project=project, question_id=question_id)

    @extend_schema(responses=serializers.QuestionOut, summary="Read a question")
    def get(self, request: Request, project_id: int, question_id: int) -> HttpResponse:
        return HttpResponse(
            serializers.QuestionOut(self._get(request, project_id, question_id)).data
        )

    @extend_schema(
        request=serializers.QuestionPatch,
        responses=serializers.QuestionOut,
        summary="Change a question (admin)",
    )
    def patch(self, request: Request, project_id: int, question_id: int) -> HttpResponse:
        question = self._get(request, project_id, question_id, ADMIN_ONLY)
        data = validated(serializers.QuestionPatch, request.data, partial=True)
        return HttpResponse(
            serializers.QuestionOut(services.question_update(question=question, **data)).data
        )

    @extend_schema(responses={204: None}, summary="Delete a question (admin)")
    def delete(self, request: Request, project_id: int, question_id: int) -> HttpResponse:
        services.question_delete(question=self._get(request, project_id, question_id, ADMIN_ONLY))
        return HttpResponse(status=status.HTTP_204_NO_CONTENT)


# --- items and import -----------------------------------------------------------------


class ItemListApi(APIView):
    @extend_schema(responses=serializers.ItemOut(many=True), summary="List items (admin, curator)")
    def get(self, request: Request, project_id: int) -> HttpResponse:
        project, _ = selectors.project_get_for(
            user=request.user, project_id=project_id, roles=STAFF_ROLES
        )
        return paginate(
            self, request, selectors.item_list_for(project=project), serializers.ItemOut
        )

    @extend_schema(
        request=serializers.ItemIn,
        responses={201: serializers.ItemOut},
        summary="Add one item in Ballot's native format",
    )
    def post(self, request: Request, project_id: int) -> HttpResponse:
        project, _ = selectors.project_get_for(
            user=request.user, project_id=project_id, roles=STAFF_ROLES
        )
        if not isinstance(request.data, dict):
            raise ValidationFailed("The body must be one item object.", field="body")
        # The whole item keys an id-less item here: posting a new pair for a known prompt adds it.
        try:
            result = services.items_import(
                project=project,
                lines=[json.dumps(request.data)],
                fmt="native",
                derive_ids="content",
            )
        except ValidationFailed as exc:
            # One item is not a file: name the field, not "line 1".
            first = exc.errors[0] if exc.errors else {"field": exc.field, "detail": exc.detail}
            field = (first.get("field") or "").removeprefix("line 1").removeprefix(": ")
            raise ValidationFailed(first["detail"], field=field or None) from None
        except Conflict:
            result = None
        if result is None or result.created == 0:
            # The same item again, or another item under a known external_id: nothing is changed.
            raise Conflict("An item with this external_id already exists.", field="external_id")
        item = selectors.item_list_for(project=project).order_by("-id").first()
        return HttpResponse(serializers.ItemOut(item).data, status=status.HTTP_201_CREATED)


class ItemDetailApi(APIView):
    @extend_schema(responses=serializers.ItemOut, summary="Read an item (admin, curator)")
    def get(self, request: Request, project_id: int, item_id: int) -> HttpResponse:
        item = selectors.item_get_for(user=request.user, project_id=project_id, item_id=item_id)
        return HttpResponse(serializers.ItemOut(item).data)


class ItemAnnotationsApi(APIView):
    @extend_schema(
        responses=serializers.AnnotationOut(many=True),
        summary="Every annotation on one item (admin, curator)",
    )
    def get(self, request: Request, project_id: int, item_id: int) -> HttpResponse:
        item = selectors.item_get_for(user=request.user, project_id=project_id, item_id=item_id)
        _, role = selectors.project_get_for(user=request.user, project_id=project_id)
        annotations = selectors.item_annotation_list(item=item)
        return HttpResponse(
            serializers.AnnotationOut(
                annotations, many=True, context={"reveal": may_reveal_usernames(role)}
            ).data
        )


class ImportApi(APIView):
    parser_classes = [JsonLinesParser, JsonlParser, MultiPartParser, FormParser]

    @extend_schema(
        summary="Import a JSONL file of items (admin, curator)",
        description=(
            "Send the file as multipart `file`, or as the raw body with Content-Type `application/x-ndjson`. "
            "`format` is one of auto, native, trl, hh, ranked, ratings. All or nothing: a bad line gets 400 "
            "with its line number and reason and nothing is written (`skip_invalid=1` leaves bad lines out "
            "instead and lists them in `invalid_lines`; a preference pair with an empty reply is a bad line). "
            "Re-importing an unchanged file changes nothing. A line whose item was imported before with "
            "other content is a conflict: `on_conflict=error` (default) answers 409 listing the lines and "
            "writes nothing, `skip` keeps the stored items, `update` replaces them (409 for items that "
            "already have assignments or labels made in Ballot). Lines without an id are keyed on their "
            "conversation: the k-th distinct line with a given prompt is that prompt's k-th item. "
            "Limits: the body at most BALLOT_IMPORT_MAX_BYTES (413), a line at most "
            "BALLOT_IMPORT_MAX_LINE_BYTES, at most BALLOT_MAX_RESPONSES_PER_ITEM responses per item."
        ),
        parameters=[
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=["auto", "native", "trl", "hh", "ranked", "ratings"],
            ),
            OpenApiParameter("on_conflict", OpenApiTypes.STR, enum=list(ON_CONFLICT)),
            OpenApiParameter("skip_invalid", OpenApiTypes.BOOL),
        ],
        request={
            "multipart/form-data": serializers.ImportIn,
            "application/x-ndjson": OpenApiTypes.BINARY,
        },
        responses={200: serializers.ImportResultOut, 201: serializers.ImportResultOut},
    )
    def post(self, request: Request, project_id: int) -> HttpResponse:
        project, _ = selectors.project_get_for(
            user=request.user, project_id=project_id, roles=STAFF_ROLES
        )
        fmt = request.query_params.get("format") or request.POST.get("format") or "auto"
        on_conflict = (
            request.query_params.get("on_conflict") or request.POST.get("on_conflict") or "error"
        )
        skip_invalid = _flag(
            request.query_params.get("skip_invalid") or request.POST.get("skip_invalid"),
            "skip_invalid",
        )
        data = request.data
        upload = request.FILES.get("file") if not isinstance(data, bytes) else None
        if upload is not None:
            limit = int(settings.BALLOT_IMPORT_MAX_BYTES)
            if upload.size > limit:
                raise PayloadTooLarge(f"The import is larger than {limit} bytes.", field="file")
            lines = upload
        elif isinstance(data, bytes):
            lines = data.splitlines()
        else:
            raise ValidationFailed(
                "Send a JSONL file as multipart 'file' or as an application/x-ndjson body.",
                field="file",
            )
        result = services.items_import(
            project=project,
            lines=lines,
            fmt=fmt,
            on_conflict=on_conflict,
            skip_invalid=skip_invalid,
        )
        return HttpResponse(
            result.as_dict(),
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class AnnotationListApi(APIView):
    @extend_schema(
        responses=serializers.AnnotationOut(many=True),
        summary="List annotations (annotators see their own)",
    )
    def get(self, request: Request, project_id: int) -> HttpResponse:
        project, role = selectors.project_get_for(user=request.user, project_id=project_id)
        annotations = selectors.annotation_list_for(user=request.user, project=project, role=role)
        return paginate(
            self,
            request,
            annotations,
            serializers.AnnotationOut,
            context={"reveal": may_reveal_usernames(role)},
        )


# --- the queue --------------------------------------------------------------------------


class NextApi(APIView):
    @extend_schema(
        responses={200: serializers.AssignmentOut, 204: None},
        summary="Lease the next item to me",
        description="Returns my live lease if I hold one, else leases a new item (204 when nothing is left for me).",
    )
    def get(self, request: Request, project_id: int) -> HttpResponse:
        project, _ = selectors.project_get_for(user=request.user, project_id=project_id)
        assignment = services.assignment_claim_next(project=project, annotator=request.user)
        if assignment is None:
            return HttpResponse(status=status.HTTP_204_NO_CONTENT)
        # The claim already loaded the item; one query adds its responses.
        assignment = selectors.assignment_responses_prefetch(assignment=assignment)
        return HttpResponse(serializers.assignment_out(assignment))


class AssignmentListApi(APIView):
    @extend_schema(responses=serializers.AssignmentBrief(many=True), summary="List my assignments")
    def get(self, request: Request) -> HttpResponse:
        return paginate(
            self,
            request,
            selectors.assignment_list_for(user=request.user),
            serializers.AssignmentBrief,
        )


class AssignmentDetailApi(APIView):
    @extend_schema(responses=serializers.AssignmentOut, summary="Read one of my assignments")
    def get(self, request: Request, assignment_id: int) -> HttpResponse:
        assignment = selectors.assignment_get_for(user=request.user, assignment_id=assignment_id)
        assignment = selectors.assignment_responses_prefetch(assignment=assignment)
        return HttpResponse(serializers.assignment_out(assignment))


class SubmitApi(APIView):
    @extend_schema(
        request=serializers.SubmitIn,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                location=OpenApiParameter.HEADER,
                required=False,
                description=(
                    "Optional, 1-128 printable characters, unique per submission. A retry with the same key "
                    "and the same body returns the first result (200, `replayed: true`) and writes nothing; "
                    "the same key with a different body gets 422 and writes nothing. Without a key a "
                    "submission is still stored exactly once, but a retry of it gets 409."
                ),
            ),
            OpenApiParameter(
                "next",
                OpenApiTypes.BOOL,
                location=OpenApiParameter.QUERY,
                required=False,
                description=(
                    "1 to get my next leased assignment in the same response (`next`, null when "
                    "nothing is left for me), so that labelling is one request per item; a retry "
                    "returns the same one. `GET …/next/` is still the way to get the first."
                ),
            ),
        ],
        responses={
            201: serializers.SubmitOut,
            200: serializers.SubmitOut,
            409: serializers.ErrorOut,
            410: serializers.ErrorOut,
            422: serializers.ErrorOut,
        },
        summary="Submit my answers for an assignment",
        description=(
            "Every answer is validated against its question; 400 names the field and reason and writes nothing. "
            "A retry with the same Idempotency-Key and body returns the first result (200) and writes nothing; "
            "the same key with another body is 422. Without a key, a second submit is 409. "
            "410 means the lease expired and the item went to someone else."
        ),
    )
    def post(self, request: Request, assignment_id: int) -> HttpResponse:
        # Checked before anything is written: a bad flag must not leave a stored submission.
        with_next = _flag(request.query_params.get("next"), "next")
        data = validated(serializers.SubmitIn, request.data)
        submit = dict(
            assignment_id=selectors._int(assignment_id),
            user=request.user,
            answers=data["answers"],
            time_spent_ms=data.get("time_spent_ms"),
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        if with_next:
            # A live lease comes back as it is, so a replayed submit returns the same next item.
            annotation, created, following = services.annotation_submit_and_claim_next(**submit)
        else:
            annotation, created = services.annotation_submit(**submit)
        body = {
            "annotation": annotation.id,
            "assignment": annotation.assignment_id,
            "created": created,
            "replayed": not created,
        }
        item = annotation.item  # loaded by the service, with its project
        if item.is_gold and item.project.show_gold_feedback:
            body["gold_answer"] = item.gold_answer
        if with_next:
            body["next"] = (
                serializers.assignment_out(
                    selectors.assignment_responses_prefetch(assignment=following)
                )
                if following is not None
                else None
            )
        return HttpResponse(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SkipApi(APIView):
    @extend_schema(
        request=None, responses=serializers.AssignmentBrief, summary="Skip an assignment"
    )
    def post(self, request: Request, assignment_id: int) -> HttpResponse:
        assignment = selectors.assignment_get_for(user=request.user, assignment_id=assignment_id)
        return HttpResponse(
            serializers.AssignmentBrief(services.assignment_skip(assignment=assignment)).data
        )


# --- members and profiles ------------------------------------------------------------------


class MembershipListApi(APIView):
    @extend_schema(
        responses=serializers.MembershipOut(many=True), summary="List a project's members"
    )
    def get(self, request: Request, project_id: int) -> HttpResponse:
        project, role = selectors.project_get_for(user=request.user, project_id=project_id)
        memberships = selectors.membership_list_for(user=request.user, project=project, role=role)
        context = {"reveal": may_reveal_usernames(role), "reader_id": request.user.id}
        return paginate(self, request, memberships, serializers.MembershipOut, context=context)

    @extend_schema(
        request=serializers.MembershipIn,
        responses={201: serializers.MembershipOut},
        summary="Add a member (admin)",
    )
    def post(self, request: Request, project_id: int) -> HttpResponse:
        project, _ = selectors.project_get_for(
            user=request.user, project_id=project_id, roles=ADMIN_ONLY
        )
        data = validated(serializers.MembershipIn, request.data)
        membership = services.membership_add(
            project=project, username=data["username"], role=data["role"]
        )
        return HttpResponse(
            serializers.MembershipOut(membership).data, status=status.HTTP_201_CREATED
        )


class MembershipDetailApi(APIView):
    def _get(self, request: Request, project_id: int, membership_id: int) -> Membership:
        project, _ = selectors.project_get_for(
            user=request.user, project_id=project_id, roles=ADMIN_ONLY
        )
        return selectors.membership_get(project=project, membership_id=membership_id)

    @extend_schema(
        request=serializers.MembershipPatch,
        responses=serializers.MembershipOut,
        summary="Change a role (admin)",
    )
    def patch(self, request: Request, project_id: int, membership_id: int) -> HttpResponse:
        membership = self._get(request, project_id, membership_id)
        data = validated(serializers.MembershipPatch, request.data)
        return HttpResponse(
            serializers.MembershipOut(
                services.membership_update(membership=membership, role=data["role"])
            ).data
        )

    @extend_schema(responses={204: None}, summary="Remove a member (admin)")
    def delete(self, request: Request, project_id: int, membership_id: int) -> HttpResponse:
        services.membership_remove(membership=self._get(request, project_id, membership_id))
        return HttpResponse(status=status.HTTP_204_NO_CONTENT)


class MyProfileApi(APIView):
    @extend_schema(responses=serializers.ProfileOut, summary="Read my annotator profile")
    def get(self, request: Request) -> HttpResponse:
        profile = services.profile_get_or_create(user=request.user)
        return HttpResponse(serializers.ProfileOut(profile).data)

    @extend_schema(
        request=serializers.ProfileIn,
        responses=serializers.ProfileOut,
        summary="Fill in or change my profile",
    )
    def put(self, request: Request) -> HttpResponse:
        data = validated(serializers.ProfileIn, request.data, partial=True)
        consent = data.pop("consent", None)
        return HttpResponse(
            serializers.ProfileOut(
                services.profile_update(user=request.user, consent=consent, **data)
            ).data
        )

    patch = put


class ProjectProfilesApi(APIView):
    @extend_schema(
        responses=serializers.ProjectProfilesOut,
        summary="Pseudonymised profiles of the project's annotators (admin, curator)",
        description=(
            "Curators see pseudonyms and no free text (`self_description` is left out, as in exports); "
            "project admins also see usernames and the free text."
        ),
    )
    def get(self, request: Request, project_id: int) -> HttpResponse:
        project, role = selectors.project_get_for(
            user=request.user, project_id=project_id, roles=STAFF_ROLES
        )
        reveal = may_reveal_usernames(role)
        rows = []
        for profile in selectors.profile_list_for(project=project):
            data = serializers.ProfileOut(profile).data
            data["annotator"] = pseudonym(profile.user_id, str(project.id))
            if reveal:
                data["username"] = profile.user.username
            else:
                # Free text can name or identify its author; curators see only the structured answers.
                data.pop("self_description", None)
            rows.append(data)
        return HttpResponse({"count": len(rows), "results": rows})


class TokenApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AnonRateThrottle]

    @extend_schema(
        request=serializers.TokenIn,
        responses={
            201: inline_serializer(
                "TokenOut",
                {"token": drf_serializers.CharField(), "prefix": drf_serializers.CharField()},
            )
        },
        summary="Exchange a username and password for an API token (shown once)",
    )
    def post(self, request: Request) -> HttpResponse:
        data = validated(serializers.TokenIn, request.data)
        user = authenticate(request, username=data["username"], password=data["password"])
        if user is None:
            from rest_framework.exceptions import AuthenticationFailed

            raise AuthenticationFailed("Wrong username or password.")
        token, raw = services.token_create(user=user, name=data.get("name", ""))
        return HttpResponse({"token": raw, "prefix": token.prefix}, status=status.HTTP_201_CREATED)
