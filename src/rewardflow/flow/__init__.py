"""rewardflow.flow"""
