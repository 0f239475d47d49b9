"""A stand-in for Colab's `google.colab`, installed only in the Colab simulation's virtual
environment (tools/colab_sim.py). Its presence in `sys.modules` is how a chapter's setup cell
knows it runs on Colab; `drive.mount` is the one function the book calls."""
