"""Reading verdicts: whether the blessings given to a component let it act on a model.

A blessing counts only when its ``blessed`` property is true and, for a ``ModelBlessing``,
its ``model_id`` is the model's own id (a blessing of another model says nothing about
this one). Each objection comes back as a sentence for the artifact's ``reasons``.

Example::

    reasons = blessing_problems(model, model_blessing=blessing, infra_blessing=None)
    if reasons: ...  # do not push; record them
"""

from __future__ import annotations

from typing import Any

from conveyor.types import Artifact, InfraBlessing, Model, ModelBlessing


def is_blessed(blessing: Artifact) -> bool:
    """Whether ``blessing.properties["blessed"]`` is true (TFX stores 1 for true)."""
    value = blessing.properties.get("blessed")
    return value is True or (isinstance(value, int) and value == 1)


def blessing_problems(
    model: Model,
    *,
    model_blessing: ModelBlessing | None = None,
    infra_blessing: InfraBlessing | None = None,
) -> list[str]:
    """Why the given blessings do not allow acting on ``model``; empty when they all do."""
    problems = []
    for kind, blessing in (("model", model_blessing), ("infra", infra_blessing)):
        if blessing is None:
            continue
        where = f"The {kind} blessing {_name(blessing)}"
        if not is_blessed(blessing):
            problems.append(f"{where} is not blessed{_their_reasons(blessing)}.")
        owner = blessing.properties.get("model_id")
        if owner is None and kind == "model":
            problems.append(f"{where} names no model_id, so it cannot vouch for model {model.id}.")
        elif owner is not None and model.id is not None and _as_id(owner) != model.id:
            problems.append(f"{where} is for model {owner}, not for model {model.id}.")
    return problems


def _name(artifact: Artifact) -> str:
    return f"(artifact {artifact.id})" if artifact.id is not None else f"at {artifact.uri}"


def _their_reasons(blessing: Artifact) -> str:
    reasons = blessing.properties.get("reasons")
    if isinstance(reasons, str):
        reasons = [reasons]
    if not reasons:
        return ""
    shown = [str(r).rstrip(".") for r in list(reasons)[:3]]
    more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
    return ": " + "; ".join(shown) + more


def _as_id(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value
