"""Registers the ``np-btl`` opinion method in :data:`personalign.methods.registry.METHODS` (lazily).

Import this module (or pass ``--plugin personalign.np.method_registration`` to ``personalign eval``)
to make ``np-btl`` available; the factory is :func:`personalign.np.opinions.make_np_btl`, which loads
the model folder given as ``--option np_model=DIR`` (default: ``<cache>/np/opinions-model``, written
by ``personalign np train --task opinions``).
"""

from __future__ import annotations

from personalign.methods.registry import METHODS

NP_BTL_HELP = (
    "NP-BTL conditioned on the user's known opinions (meta-trained on OTHER respondents: learns "
    "population structure; evaluated users held out of training)."
)

if "np-btl" not in METHODS:
    METHODS.register("np-btl", "personalign.np.opinions:make_np_btl", help=NP_BTL_HELP)
