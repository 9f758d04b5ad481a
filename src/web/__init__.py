"""The web layer: blueprints for HTML pages and the JSON API over the one in-memory recommender."""
