"""Plain records that flow from stored feedback into curation jobs and exports.

No Django here: :mod:`curation.pairs` builds these from the rows it loads from
the database, and everything downstream (FiFA scoring, suspect labels, exports)
consumes them. That way an export and a curation job can never disagree about what a pair is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.conversation import conversation_text


@dataclass(frozen=True, slots=True)
class PreferencePair:
    """One aggregated preference between two texts for one prompt.

    ``chosen_response_id`` is ``None`` when the chosen text is an annotator's
    correction (it has no Response row of its own).
    """

    item_id: int
    external_id: str
    prompt: list[dict]  # the conversation: [{"role": ..., "content": ...}, ...]
    chosen_text: str
    rejected_text: str
    chosen_response_id: int | None
    rejected_response_id: int
    kind: str  # pairwise | ranking | rating | correction
    question: str  # the question's name
    aspect: str | None = None  # rating aspect when kind == "rating"
    tie: bool = False
    margin: float | None = None  # pairwise strength, rating gap; None when unknown
    weight: float = 1.0  # 1/C(K,2) for pairs drawn from a K-way ranking
    agreement: float = 1.0  # share of votes that agree with the aggregated label
    votes: int = 1
    annotators: tuple[str, ...] = ()  # pseudonymous annotator ids
    source: str = "human"  # human | ai | mixed
    segments: tuple[
        dict, ...
    ] = ()  # corrections: {start, end, original, corrected, category, comment}
    tags: tuple[str, ...] = ()
    metadata: dict = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """The conversation flattened to text (:func:`curation.conversation.conversation_text`)."""
        return conversation_text(self.prompt)


@dataclass(frozen=True, slots=True)
class RankedList:
    """One item's responses ordered best first, aggregated over annotators.

    ``scores`` is aligned with ``responses``: higher is better (for example the
    mean Borda score over annotators). Tied responses share a score.
    """

    item_id: int
    external_id: str
    prompt: list[dict]
    responses: tuple[str, ...]
    response_ids: tuple[int, ...]
    scores: tuple[float, ...]
    question: str
    agreement: float = 1.0
    votes: int = 1
    annotators: tuple[str, ...] = ()
    source: str = "human"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PointwiseRow:
    """One response with its aspect scores, averaged over annotators."""

    item_id: int
    external_id: str
    prompt: list[dict]
    response: str
    response_id: int
    scores: dict  # aspect -> mean value
    question: str
    scale: tuple[float, float] = (1.0, 5.0)
    votes: int = 1
    annotators: tuple[str, ...] = ()
    source: str = "human"
    tags: tuple[str, ...] = ()
