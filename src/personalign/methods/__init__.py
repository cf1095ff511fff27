"""Personalization methods, registered by name in :data:`personalign.methods.registry.METHODS`.

Importing this package registers every built-in method lazily (``"module:attr"``), so listing
names imports nothing heavy. Each entry is a factory ``(MethodContext) -> Personalizer``.

Baselines (:mod:`personalign.methods.baselines`): ``zero-shot``, ``profile``, ``few-shot``,
``profile+few-shot`` and the non-LLM reference ``group-majority`` (uses population aggregates;
exempt from the privacy invariant). Fermi family (:mod:`personalign.fermi.methods`): ``opro``,
``opro-rop``, ``fermi-no-rop``, ``fermi`` and ``fermi+`` (Ext on).
"""

from personalign.methods.registry import METHODS, MethodContext, get_method

_BUILTIN = {
    "zero-shot": ("personalign.methods.baselines:make_zero_shot", "No persona (the model's own answer)."),
    "profile": ("personalign.methods.baselines:make_profile", "Profile persona prompt S1."),
    "few-shot": ("personalign.methods.baselines:make_few_shot", "k most similar own past opinions."),
    "profile+few-shot": (
        "personalign.methods.baselines:make_profile_few_shot",
        "Profile persona plus k most similar own past opinions.",
    ),
    "group-majority": (
        "personalign.methods.baselines:make_group_majority",
        "Population-majority option (reference; uses other people's aggregates; exempt from privacy).",
    ),
    "opro": (
        "personalign.fermi.methods:make_opro",
        "OPRO: loop without mis-aligned contexts.",
    ),
    "opro-rop": ("personalign.fermi.methods:make_opro_rop", "OPRO pool answered with Retrieval-of-Prompt."),
    "fermi-no-rop": ("personalign.fermi.methods:make_fermi_no_rop", "Fermi pool; single best prompt."),
    "fermi": ("personalign.fermi.methods:make_fermi", "Fermi with Retrieval-of-Prompt."),
    "np-btl": (
        "personalign.np.opinions:make_np_btl",
        "NP-BTL conditioned on the user's known opinions (meta-trained on OTHER respondents: learns "
        "population structure; evaluated users held out of training).",
    ),
    "fermi+": (
        "personalign.fermi.methods:make_fermi_plus",
        "Fermi + Ext insert_opinions candidates (our extension; small_model config).",
    ),
}

for _name, (_target, _help) in _BUILTIN.items():
    if _name not in METHODS:
        METHODS.register(_name, _target, help=_help)

__all__ = ["METHODS", "MethodContext", "get_method"]
