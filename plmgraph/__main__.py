from plmgraph.cli import main

main()
