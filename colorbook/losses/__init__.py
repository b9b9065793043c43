"""Loss terms and objectives: the DTU game (``dtu``) and the KTH loss with patch aggregation (``kth``)."""
