"""REST API for a project's webhooks: admins manage them, curators read them and their deliveries."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import validated
from annotation.pagination import paginate
from annotation.selectors import ADMIN_ONLY, STAFF_ROLES, project_get_for
from curation.webhooks import selectors, serializers, services

SIGNING = (
    "Each delivery is a POST of JSON {type, timestamp, data} signed as Standard Webhooks do: "
    "headers webhook-id (the event id, the same on every retry), webhook-timestamp (Unix seconds) "
    "and webhook-signature: v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}' keyed with the "
    "base64 part of the whsec_ secret>. Failed deliveries (network errors, 408, 425, 429, 5xx) "
    "are retried with exponential backoff."
)


class WebhookListApi(APIView):
    @extend_schema(
        responses=serializers.WebhookOut(many=True),
        summary="List the project's webhooks (admin, curator)",
        description="The secrets are never listed; they are shown once, on creation.",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=STAFF_ROLES)
        return paginate(
            self, request, selectors.webhook_list_for(project=project), serializers.WebhookOut
        )

    @extend_schema(
        request=serializers.WebhookIn,
        responses={201: serializers.WebhookCreatedOut},
        summary="Create a webhook (admin); the answer holds its secret, shown only this once",
        description=SIGNING,
    )
    def post(self, request: Request, project_id: int) -> Response:
        project, _ = project_get_for(user=request.user, project_id=project_id, roles=ADMIN_ONLY)
        data = validated(serializers.WebhookIn, request.data)
        webhook = services.webhook_create(project=project, user=request.user, **data)
        return Response(serializers.WebhookCreatedOut(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    @extend_schema(responses=serializers.WebhookOut, summary="Read a webhook (admin, curator)")
    def get(self, request: Request, project_id: int, webhook_id: int) -> Response:
        webhook = selectors.webhook_get_for(
            user=request.user, project_id=project_id, webhook_id=webhook_id
        )
        return Response(serializers.WebhookOut(webhook).data)

    @extend_schema(
        request=serializers.WebhookPatchIn,
        responses=serializers.WebhookOut,
        summary="Change a webhook's URL, events, description or enable/disable it (admin)",
    )
    def patch(self, request: Request, project_id: int, webhook_id: int) -> Response:
        webhook = selectors.webhook_get_for(
            user=request.user, project_id=project_id, webhook_id=webhook_id, roles=ADMIN_ONLY
        )
        data = validated(serializers.WebhookPatchIn, request.data)
        return Response(
            serializers.WebhookOut(services.webhook_update(webhook=webhook, data=data)).data
        )

    @extend_schema(responses={204: None}, summary="Delete a webhook and its delivery log (admin)")
    def delete(self, request: Request, project_id: int, webhook_id: int) -> Response:
        webhook = selectors.webhook_get_for(
            user=request.user, project_id=project_id, webhook_id=webhook_id, roles=ADMIN_ONLY
        )
        services.webhook_delete(webhook=webhook)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestApi(APIView):
    @extend_schema(
        request=None,
        responses={202: serializers.WebhookDeliveryOut},
        summary="Send a webhook.test event to this webhook (admin)",
        description="Queued like any event; read its outcome in the deliveries list.",
    )
    def post(self, request: Request, project_id: int, webhook_id: int) -> Response:
        webhook = selectors.webhook_get_for(
            user=request.user, project_id=project_id, webhook_id=webhook_id, roles=ADMIN_ONLY
        )
        delivery = services.webhook_send_test(webhook=webhook)
        delivery.refresh_from_db()
        return Response(
            serializers.WebhookDeliveryOut(delivery).data, status=status.HTTP_202_ACCEPTED
        )


class WebhookDeliveryListApi(APIView):
    @extend_schema(
        responses=serializers.WebhookDeliveryOut(many=True),
        summary="A webhook's deliveries, newest first, with attempts and status codes (admin, curator)",
    )
    def get(self, request: Request, project_id: int, webhook_id: int) -> Response:
        webhook = selectors.webhook_get_for(
            user=request.user, project_id=project_id, webhook_id=webhook_id
        )
        return paginate(
            self,
            request,
            selectors.delivery_list_for(webhook=webhook),
            serializers.WebhookDeliveryOut,
        )
