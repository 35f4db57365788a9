from __future__ import annotations

from django.contrib import admin

from annotation import models


class ResponseInline(admin.TabularInline):
    model = models.Response
    extra = 0


class QuestionInline(admin.TabularInline):
    model = models.Question
    extra = 0


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "overlap", "gold_rate", "require_profile", "created_at"]
    search_fields = ["name"]
    inlines = [QuestionInline, MembershipInline]


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "project", "role"]
    list_filter = ["role"]
    raw_id_fields = ["user", "project"]


@admin.register(models.Question)
class QuestionAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "name", "kind", "position", "required"]
    list_filter = ["kind"]


@admin.register(models.Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "external_id",
        "is_gold",
        "priority",
        "slots_taken",
        "created_at",
    ]
    list_filter = ["is_gold", "project"]
    search_fields = ["external_id"]
    inlines = [ResponseInline]


@admin.register(models.Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "position", "model_name"]
    raw_id_fields = ["item"]


@admin.register(models.AnnotatorProfile)
class AnnotatorProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "age_band", "residence_country", "consented_at", "completed_at"]


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "item", "annotator", "status", "leased_until"]
    list_filter = ["status"]
    raw_id_fields = ["item", "annotator", "project"]


class PairwiseInline(admin.TabularInline):
    model = models.PairwiseAnswer
    extra = 0
    raw_id_fields = ["chosen", "rejected", "question"]


class RankingInline(admin.TabularInline):
    model = models.RankingAnswer
    extra = 0


class RatingInline(admin.TabularInline):
    model = models.RatingAnswer
    extra = 0
    raw_id_fields = ["response"]


class CorrectionInline(admin.TabularInline):
    model = models.CorrectionAnswer
    extra = 0
    raw_id_fields = ["response"]


@admin.register(models.Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "item",
        "annotator",
        "source",
        "judge_name",
        "time_spent_ms",
        "created_at",
    ]
    list_filter = ["source"]
    raw_id_fields = ["item", "assignment", "annotator", "project"]
    inlines = [PairwiseInline, RankingInline, RatingInline, CorrectionInline]


for answer_model in (
    models.PairwiseAnswer,
    models.RankingAnswer,
    models.RatingAnswer,
    models.CorrectionAnswer,
):
    admin.site.register(
        answer_model, list_display=["id", "annotation", "question"], raw_id_fields=["annotation"]
    )


@admin.register(models.ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "key_hash"]
