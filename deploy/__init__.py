"""Device bundle templates (android/, rpi/, micro/), installed as the package `tfimp.deploy`."""
