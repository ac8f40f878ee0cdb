from ..cli import main

main(["train", *__import__("sys").argv[1:]])
