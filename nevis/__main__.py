from nevis.run import main

main()
