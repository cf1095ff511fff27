"""NP-BTL: few-shot steerable reward models (Neural Processes over preference pairs).

Public API (see ``docs/results-np.md`` and the module docstrings):

* models: :class:`~personalign.np.models.BTLRewardModel`, :class:`~personalign.np.models.NPBTLRewardModel`,
  :func:`~personalign.np.models.build_model`, configured by :class:`~personalign.np.config.NPModelConfig`;
* inference: ``model.condition(context_pairs) -> UserState``, then ``state.reward(...)`` /
  ``state.prefers(...)``;
* data: :class:`~personalign.np.episodes.EpisodeSource` (protocol),
  :class:`~personalign.np.episodes.PreferencePool`, :class:`~personalign.np.episodes.PoolEpisodeSource`;
* training: :class:`~personalign.np.trainer.NPTrainer` with :class:`~personalign.np.config.NPTrainingConfig`;
* evaluation: :func:`~personalign.np.evaluate.evaluate_grid`;
* tasks: :data:`~personalign.np.tasks.TASKS` and :data:`~personalign.np.tasks.BENCHES` registries.

Heavy modules (torch) are imported on use; importing this package is cheap.
"""
