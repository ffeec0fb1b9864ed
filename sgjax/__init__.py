"""sgjax: word2vec parameter learning (Xin Rong, arXiv:1411.2738) as pure JAX functions."""

__version__ = "0.1.0"
