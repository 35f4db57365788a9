"""The curator's workspace navigation: one list of sections, each shown once its page exists."""

from __future__ import annotations

from django import template
from django.urls import NoReverseMatch, reverse

from annotation.models import Role
from annotation.selectors import membership_role

register = template.Library()

# (URL name in the ``frontend`` namespace, label). A section whose URL is not
# configured is left out, so the navigation never links to a missing page.
SECTIONS = [
    ("project-settings", "Set-up"),  # admins only: see ADMIN_SECTIONS
    ("project-import", "Import"),
    ("project-members", "Members"),
    ("item-list", "Items"),
    ("job-list", "Jobs"),
    ("quality", "Quality"),
    ("judge-list", "Judges"),
    ("routing", "Routing"),
    ("explanations", "Explanations"),
    ("review-list", "Review"),
    ("dataset-list", "Datasets"),
    ("webhook-list", "Webhooks"),
]
# Sections whose page refuses curators: not offered to them.
ADMIN_SECTIONS = {"project-settings"}


@register.inclusion_tag("frontend/workspace/nav.html", takes_context=True)
def workspace_nav(context, project, active: str = ""):
    """Links to the sections the reader may open; ``active`` is the current section's URL name."""
    user = context["request"].user
    role = membership_role(user=user, project=project)
    links = []
    for name, label in SECTIONS:
        if name in ADMIN_SECTIONS and role != Role.ADMIN:
            continue
        try:
            url = reverse(f"frontend:{name}", kwargs={"project_id": project.id})
        except NoReverseMatch:
            continue
        links.append({"url": url, "label": label, "active": name == active})
    return {"project": project, "links": links}


@register.filter
def pvalue(value) -> str:
    """A p-value as people read it: three decimals, ``< 0.001`` below that, ``–`` when missing."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"
