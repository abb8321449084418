"""rewardflow.eval"""
