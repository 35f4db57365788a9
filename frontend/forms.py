"""Forms for onboarding and the profile page. They only parse; ``profile_update`` validates and stores."""

from __future__ import annotations

from typing import Any

from django import forms

from annotation.models import AnnotatorProfile
from annotation.services.projects import (
    AGE_BANDS,
    LANGUAGE_PROFICIENCY,
    PREFERENCE_KEYS,
    TEXT_PROFILE_FIELDS,
)

LANGUAGE_ROWS = 3

PREFERENCE_HELP = {
    "factuality": "Responses are accurate and true.",
    "safety": "Responses avoid harm.",
    "creativity": "Responses are original and imaginative.",
    "fluency": "Responses read well.",
    "helpfulness": "Responses do what I asked.",
    "personalisation": "Responses fit me and my situation.",
    "diversity": "Responses show more than one viewpoint.",
    "values": "Responses reflect my values.",
}

AGE_CHOICES = [("", "—")] + [(a, a.replace("_", " ").capitalize()) for a in AGE_BANDS if a]
PROFICIENCY_CHOICES = [("", "—")] + [(p, p.capitalize()) for p in LANGUAGE_PROFICIENCY]
FAMILIARITY_CHOICES = [
    ("", "—"),
    ("none", "I have never used one"),
    ("somewhat", "Somewhat familiar"),
    ("very", "Very familiar"),
]
FREQUENCY_CHOICES = [
    ("", "—"),
    ("never", "Never"),
    ("monthly", "Every month"),
    ("weekly", "Every week"),
    ("daily", "Every day"),
]
EDUCATION_CHOICES = [
    ("", "—"),
    ("primary", "Primary school"),
    ("secondary", "Secondary school"),
    ("vocational", "Vocational training"),
    ("university", "University degree"),
    ("graduate", "Graduate degree"),
    ("prefer_not_to_say", "Prefer not to say"),
]
EMPLOYMENT_CHOICES = [
    ("", "—"),
    ("employed", "Employed"),
    ("self_employed", "Self-employed"),
    ("student", "Student"),
    ("unemployed", "Not in work"),
    ("retired", "Retired"),
    ("prefer_not_to_say", "Prefer not to say"),
]


class ConsentForm(forms.Form):
    consent = forms.BooleanField(
        required=True,
        label="I agree that my answers and my profile are stored and used, pseudonymised, to build training data.",
    )


class RangeInput(forms.NumberInput):
    input_type = "range"


class ProfileForm(forms.Form):
    """The PRISM-style survey. Every field is optional except what the project asks for."""

    age_band = forms.ChoiceField(choices=AGE_CHOICES, required=False, label="Age")
    gender = forms.CharField(max_length=64, required=False)
    birth_country = forms.CharField(max_length=64, required=False, label="Country of birth")
    residence_country = forms.CharField(max_length=64, required=False, label="Country of residence")
    education = forms.ChoiceField(
        choices=EDUCATION_CHOICES, required=False, label="Highest education"
    )
    employment = forms.ChoiceField(choices=EMPLOYMENT_CHOICES, required=False)
    expertise = forms.CharField(
        max_length=500,
        required=False,
        label="Expertise",
        help_text="Domains you know well, separated by commas (e.g. medicine, law, Python).",
    )
    llm_familiarity = forms.ChoiceField(
        choices=FAMILIARITY_CHOICES,
        required=False,
        label="How familiar are you with AI chat assistants?",
    )
    llm_use_frequency = forms.ChoiceField(
        choices=FREQUENCY_CHOICES, required=False, label="How often do you use one?"
    )
    self_description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=5000,
        required=False,
        label="In your own words, what do you want from an AI assistant?",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key in PREFERENCE_KEYS:
            self.fields[f"pref_{key}"] = forms.IntegerField(
                min_value=0,
                max_value=100,
                required=False,
                label=key.capitalize(),
                help_text=PREFERENCE_HELP[key],
                widget=RangeInput(attrs={"min": 0, "max": 100, "step": 1, "class": "pref-range"}),
            )
            # A range input always submits a number, so "not answered" travels
            # separately: "1" until the annotator moves the slider (profile.js
            # clears it). Without JavaScript untouched sliders stay unanswered.
            self.fields[f"pref_{key}_unanswered"] = forms.CharField(
                required=False, initial="1", widget=forms.HiddenInput
            )
        for row in range(LANGUAGE_ROWS):
            self.fields[f"lang_{row}"] = forms.CharField(
                max_length=64, required=False, label=f"Language {row + 1}"
            )
            self.fields[f"lang_{row}_proficiency"] = forms.ChoiceField(
                choices=PROFICIENCY_CHOICES,
                required=False,
                label=f"Proficiency in language {row + 1}",
            )

    @property
    def preference_fields(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        """Each slider with its hidden "unanswered" marker."""
        return [(self[f"pref_{key}"], self[f"pref_{key}_unanswered"]) for key in PREFERENCE_KEYS]

    @property
    def language_rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [
            (self[f"lang_{row}"], self[f"lang_{row}_proficiency"]) for row in range(LANGUAGE_ROWS)
        ]

    @property
    def about_fields(self) -> list[forms.BoundField]:
        names = (
            "age_band",
            "gender",
            "birth_country",
            "residence_country",
            "education",
            "employment",
        )
        return [self[name] for name in names]

    @classmethod
    def initial_from(cls, profile: AnnotatorProfile) -> dict[str, Any]:
        initial: dict[str, Any] = {name: getattr(profile, name) for name in TEXT_PROFILE_FIELDS}
        initial["expertise"] = ", ".join(profile.expertise or [])
        for key in PREFERENCE_KEYS:
            value = (profile.stated_preferences or {}).get(key)
            if value is not None:
                initial[f"pref_{key}"] = value
                initial[f"pref_{key}_unanswered"] = ""
        for row, entry in enumerate((profile.languages or [])[:LANGUAGE_ROWS]):
            initial[f"lang_{row}"] = entry.get("language", "")
            initial[f"lang_{row}_proficiency"] = entry.get("proficiency") or ""
        return initial

    def profile_fields(self) -> dict[str, Any]:
        """The cleaned data in the shape ``profile_update`` takes."""
        data = self.cleaned_data
        fields: dict[str, Any] = {name: data.get(name) or None for name in TEXT_PROFILE_FIELDS}
        fields["expertise"] = [
            part.strip() for part in (data.get("expertise") or "").split(",") if part.strip()
        ]
        fields["stated_preferences"] = {
            key: None if data.get(f"pref_{key}_unanswered") else data.get(f"pref_{key}")
            for key in PREFERENCE_KEYS
        }
        fields["languages"] = [
            {
                "language": data[f"lang_{row}"].strip(),
                "proficiency": data.get(f"lang_{row}_proficiency") or None,
            }
            for row in range(LANGUAGE_ROWS)
            if (data.get(f"lang_{row}") or "").strip()
        ]
        return fields


class ProjectSetupForm(forms.Form):
    """A project's settings on the set-up page. Parses types only; ``project_setup_save`` validates."""

    name = forms.CharField(max_length=200)
    instructions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}),
        required=False,
        help_text="Markdown, shown to annotators above every item.",
    )
    overlap = forms.IntegerField(
        min_value=1,
        max_value=100,
        initial=1,
        help_text="How many distinct annotators label each item.",
    )
    gold_rate = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=0.0,
        help_text="Share of served items that are gold (0 to 1).",
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )
    lease_seconds = forms.IntegerField(
        min_value=30,
        max_value=7 * 86400,
        initial=30 * 60,
        label="Lease (seconds)",
        help_text="How long an item stays reserved for the annotator who opened it.",
    )
    quality_threshold = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=0.5,
        help_text="Annotators whose agreement with the majority falls below this are flagged.",
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )
    require_profile = forms.BooleanField(
        required=False,
        label="Require a profile",
        help_text="Annotators give consent and fill in their profile before the first item.",
    )
    show_gold_feedback = forms.BooleanField(
        required=False,
        label="Show gold feedback",
        help_text="Show a gold item's expected answer after submission.",
    )
    adaptive_overlap = forms.BooleanField(
        required=False,
        label="Adaptive overlap",
        help_text="Ask more annotators only where the votes disagree; the overlap above is "
        "then not used.",
    )
    min_annotators = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100,
        initial=3,
        label="Minimum annotators",
        help_text="Every item starts with this many.",
    )
    max_annotators = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100,
        initial=5,
        label="Maximum annotators",
        help_text="An item whose votes keep disagreeing asks for one more, up to this.",
    )
    agreement_threshold = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        initial=0.75,
        label="Agreement to close",
        help_text="Share of votes on the most voted answer (ratings: one minus the spread) "
        "that closes an item early.",
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )
    confidence_threshold = forms.FloatField(
        min_value=0,
        max_value=1,
        required=False,
        label="Confidence to close (optional)",
        help_text="When a reliability job finishes, items whose label confidence is under "
        "this ask for another vote.",
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )

    FIELDS = (
        "name",
        "instructions",
        "overlap",
        "gold_rate",
        "lease_seconds",
        "quality_threshold",
        "require_profile",
        "show_gold_feedback",
        "adaptive_overlap",
        "min_annotators",
        "max_annotators",
        "agreement_threshold",
        "confidence_threshold",
    )
    # Drawn in their own group on the page (setup_form.html).
    ADAPTIVE_FIELDS = (
        "adaptive_overlap",
        "min_annotators",
        "max_annotators",
        "agreement_threshold",
        "confidence_threshold",
    )

    def adaptive_fields(self) -> list:
        return [self[name] for name in self.ADAPTIVE_FIELDS]

    @classmethod
    def initial_from(cls, project: Any) -> dict[str, Any]:
        return {name: getattr(project, name) for name in cls.FIELDS}

    def project_fields(self) -> dict[str, Any]:
        """The cleaned data in the shape ``project_update`` takes.

        An adaptive-overlap number left empty keeps its stored value (the confidence
        threshold, optional, is cleared instead), so a form posted without them changes
        nothing there.
        """
        fields = {name: self.cleaned_data[name] for name in self.FIELDS}
        for name in ("min_annotators", "max_annotators", "agreement_threshold"):
            if fields[name] is None:
                del fields[name]
        if "confidence_threshold" not in self.data:
            del fields["confidence_threshold"]
        return fields


class MemberAddForm(forms.Form):
    user = forms.CharField(
        max_length=254,
        label="Username or e-mail",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    role = forms.ChoiceField(
        choices=[("annotator", "Annotator"), ("curator", "Curator"), ("admin", "Admin")],
        initial="annotator",
    )
