"""The recipes `tfimp run NAME` knows: one file per architecture, installed as `tfimp.recipes`."""
