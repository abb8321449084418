"""rewardflow.sampling"""
