"""The web dashboard (`graflow dashboard`, extra `graflow[dashboard]`)."""
