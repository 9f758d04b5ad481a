"""The serving engine: the Recommender (recommender.py) and the parts it composes, each with one job:

- ``catalogue``: every anime's metadata, filters and the title index;
- ``interactions``: each user's known and preferred anime, and ``Profiles``, whom a batch is scored for;
- ``scorers``: one class per signal (SCORERS), each giving one score per anime;
- ``hybrid``: the weighted mix of the scorers' normalised outputs; ``settings``: the mix a model records;
- ``ranking``: the one ``top_k`` that serving and evaluation both rank with;
- ``candidates``: each known user's and each anime's ranked lists with their reasons' numbers, computed when a
  model is published;
- ``explanations``: the reasons of what a list shows, their numbers and their words (``Explainer``);
  ``personal_lists``: a person's imported list as a profile;
- ``validation``: the limits every request is checked against; ``model_check``: what a model passes to go live.
"""
