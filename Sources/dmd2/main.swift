print("dmd2")
