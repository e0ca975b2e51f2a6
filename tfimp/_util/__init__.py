"""Small pieces shared by every part of tfimp: errors, atomic writes, child processes, text
tables and argument validators. Nothing here imports TensorFlow."""
