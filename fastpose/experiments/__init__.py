"""Experiments that train several configurations and tabulate them (``python -m
fastpose.experiments.<name>``): ``loss_study``, the loss-function study of Shi et al. 2020."""
