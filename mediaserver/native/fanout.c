int ms_probe(int x) { return x + 1; }
