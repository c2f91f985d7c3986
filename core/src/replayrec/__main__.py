from replayrec.cli import main

main()
