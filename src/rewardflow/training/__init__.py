"""rewardflow.training"""
