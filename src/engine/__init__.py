"""The serving engine's parts, each with one job (the Recommender in src/engine/recommender.py composes them):

- ``serving_config``: the ``serving:`` settings;
- ``catalogue``: every anime's metadata, filters and the title index;
- ``interactions``: each user's known and preferred anime, and ``Profiles``, whom a batch is scored for;
- ``scorers``: one object per signal, each giving one score per anime;
- ``hybrid``: the weighted mix of the scorers' normalised outputs;
- ``ranking``: the one ``top_k`` that serving and evaluation both rank with;
- ``explanations``: the reason strings;
- ``validation``: the limits every request is checked against.
"""
