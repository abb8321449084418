"""rewardflow.rewards"""
