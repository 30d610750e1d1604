"""matloop: an autonomous active-learning controller for materials discovery.

This small package holds only what every other package may import: the shared
types (:mod:`matloop.types`), the settings (:mod:`matloop.settings`) and the
bundled reference data (:mod:`matloop.data`).  The controller lives in
``agent``, proposers in ``generators``, models in ``surrogates``, executors in
``lab_adapters`` and the Prefect flows in ``flows``.
"""

__version__ = "0.1.0"
