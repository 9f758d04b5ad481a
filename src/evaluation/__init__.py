"""Offline evaluation, split along the seams of the recommenders package (the splits are src/data/splits.py):

- ``runner``: the whole evaluation of a model, as ``anime-evaluate`` runs it;
- ``metrics``: small, pure metric functions with their formulas;
- ``baselines``: popularity, item-kNN, ALS, EASE and the NCF's own score, fitted on training rows;
- ``protocol``: ranking every held-out user with a method and averaging the metrics;
- ``newcomers``: the favourites and imported-list protocols for people the model never saw; ``curves``: Recall@1..k;
- ``reports``: metrics.json, evaluation.md, chart.png and Comet.

Protocol
--------
For each user ``u`` with held-out ratings:

* ``T_u`` (relevant set) = anime of ``u`` with ``split == SPLIT_TEST``: a per-user 20 % of the anime ``u`` rated.
* ``K_u`` (known set) = every other row of ``u`` (train and validation, unrated ``rating == 0`` rows included).
  A recommender never suggests what the user already has on their list, so ``K_u`` is excluded from the ranking.
* A method ranks the rest of the catalogue; ``L_u = (l_1, ..., l_k)`` are its k best anime, best first, ranked by
  the one ``top_k`` of src/engine/ranking.py that serving uses. ``rel_i = 1`` if ``l_i`` is in ``T_u``, else 0.

The metric formulas are in ``metrics``. The product (``hybrid``; ``favourites`` for newcomers) is compared with the
best baseline user by user (``reports.versus_best_baseline``): the mean per-user difference of Recall@k with its
standard error, so that a gap can be told from the noise of a few users.
"""
